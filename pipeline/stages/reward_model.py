"""The `reward_model` stage: a sequence-classification reward model trained on preference pairs (trl.RewardTrainer).

    rm:
      kind: reward_model
      model: {from: cold_start}             # a causal LM folder, a hub id, {init: tiny, ...}, or an earlier RM
      data: {from: prefs}                   # chosen/rejected (chat messages or strings), optional prompt
      trainer: {num_train_epochs: 3, learning_rate: 1e-4, per_device_train_batch_size: 16}

The model loads as `AutoModelForSequenceClassification` with one label: a causal LM's backbone weights carry
over and only the scalar `score` head starts random (seeded). The pad token is set (eos when the tokenizer has
none) because the classifier scores the last non-pad token. Its `model/` folder (with tokenizer and chat template)
is what the `helpfulness` and `harmlessness` rewards load with `model: {from: rm}`.

Held-out pairs: `eval_data` when given; else the `test` split of the upstream stage's DatasetDict (the
preferences stage writes one); else `eval_fraction` of the training pairs, split off with the seed. Metrics:
pairwise accuracy on them (the fraction of pairs whose chosen scores above its rejected) before and after
training, plus the training curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef, ModelRef
from pipeline.run.registry import register_stage


@dataclass
class RewardModelStage:
    model: ModelRef
    data: DataRef  # pairs: chosen, rejected (+ prompt)
    eval_data: DataRef | None = None
    eval_fraction: float = 0.1  # held out from `data` when neither eval_data nor an upstream test split exists
    trainer: dict = field(default_factory=dict)  # -> trl.RewardConfig, unchanged
    trainer_config: ClassVar[str] = "trl.RewardConfig"

    def __post_init__(self):
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction: must be in [0, 1), got {self.eval_fraction}")


def load_reward_model(source, seed: int = 0, trust_remote_code: bool = False, config_overrides: dict | None = None):
    """(AutoModelForSequenceClassification with num_labels=1, tokenizer) from a folder/hub id or a tiny-init dict.

    From a folder the backbone weights of a causal LM load by name (with `config_overrides` set on its config
    first); for {init: tiny} the tiny causal LM is built and its backbone copied in. The tokenizer gets a pad token
    and our chat template when it has none.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from pipeline.training import models

    torch.manual_seed(seed)  # the score head is random-init: make it the same on every run
    tokenizer = models.load_tokenizer(source, trust_remote_code=trust_remote_code)
    if isinstance(source, dict):
        causal = models.build_tiny_model(source, tokenizer, seed)
        config = causal.config
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
        model.base_model.load_state_dict(causal.base_model.state_dict())
    else:
        config = models.load_config(source, config_overrides or {}, trust_remote_code, num_labels=1)
        model = AutoModelForSequenceClassification.from_pretrained(source, config=config,
                                                                   trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = models.chat_template_for(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def check_pairs(dataset, where: str) -> None:
    missing = [c for c in ("chosen", "rejected") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{where}: column '{missing[0]}' missing; a reward model trains on preference pairs "
                         f"(chosen, rejected, optional prompt), e.g. the output of a preferences stage; "
                         f"columns: {', '.join(dataset.column_names)}")
    if len(dataset) == 0:
        raise ValueError(f"{where}: no pairs")


def held_out(cfg: RewardModelStage, ctx: StageContext, train):
    """(train, eval): see the module docstring for where the held-out pairs come from."""
    import datasets

    if cfg.eval_data is not None:
        return train, ctx.load_dataset(cfg.eval_data)
    if cfg.data.stage and cfg.data.split in (None, "train"):
        upstream = datasets.load_from_disk(ctx.upstream_result(cfg.data.stage).dataset)
        if isinstance(upstream, datasets.DatasetDict) and "test" in upstream and len(upstream["test"]):
            return train, upstream["test"]
    if cfg.eval_fraction <= 0 or len(train) < 2:
        return train, None
    parts = train.train_test_split(test_size=cfg.eval_fraction, seed=ctx.seed)
    return parts["train"], parts["test"]


def pairwise_accuracy(trainer) -> float | None:
    """Fraction of held-out pairs whose chosen scores strictly above its rejected, over the trainer's tokenized
    eval set (the same chat rendering and truncation filter as training); None without one."""
    import torch

    if trainer.eval_dataset is None or len(trainer.eval_dataset) == 0:
        return None
    model = trainer.model
    was_training = model.training
    model.eval()
    wins = total = 0
    with torch.no_grad():
        for batch in trainer.get_eval_dataloader():
            logits = model(input_ids=batch["input_ids"].to(trainer.args.device),
                           attention_mask=batch["attention_mask"].to(trainer.args.device)).logits.squeeze(-1)
            chosen, rejected = torch.chunk(logits.float(), 2)
            wins += int((chosen > rejected).sum())
            total += len(chosen)
    model.train(was_training)
    return wins / total if total else None


@register_stage("reward_model", RewardModelStage, help="sequence-classification reward model from preference pairs")
def run(cfg: RewardModelStage, ctx: StageContext) -> StageResult:
    """Train with trl.RewardTrainer; save model/ (classifier + tokenizer), report/curves, held-out accuracy."""
    from trl import RewardConfig, RewardTrainer

    from pipeline.training import common as training
    from pipeline.training import models

    train = ctx.load_dataset(cfg.data)
    check_pairs(train, "data")
    train, evaluation = held_out(cfg, ctx, train)
    if evaluation is not None:
        check_pairs(evaluation, "eval_data")
    model, tokenizer = load_reward_model(ctx.resolve_model(cfg.model), ctx.seed, cfg.model.trust_remote_code,
                                         cfg.model.config_overrides)
    defaults = {"logging_steps": 10, "save_steps": 200, "include_num_input_tokens_seen": "non_padding"}
    trainer_args = training.yaml_scientific_to_float(cfg.trainer)
    config = training.build_trl_config(RewardConfig, trainer_args, ctx.stage_dir, ctx.seed, defaults)
    params = models.count_parameters(model)
    trainer = RewardTrainer(model=model, args=config, train_dataset=train, eval_dataset=evaluation,
                            processing_class=tokenizer, callbacks=[training.ledger_callback(ctx.ledger, params)])
    before = pairwise_accuracy(trainer)
    resume = training.last_checkpoint(config)
    ctx.log.info("reward_model: %d train pairs, %s held out, accuracy before %s, resume from %s", len(train),
                 len(evaluation) if evaluation is not None else 0, before, resume)
    trainer.train(resume_from_checkpoint=resume)
    after = pairwise_accuracy(trainer)
    history = trainer.state.log_history
    last = training.final_metrics(history)
    metrics = {"pairs_train": len(train), "pairs_eval": len(evaluation) if evaluation is not None else 0,
               "eval_pairwise_accuracy_before": before, "eval_pairwise_accuracy": after, "params": params,
               "train_loss": last.get("train_loss"), "train_accuracy": last.get("accuracy"),
               "global_step": trainer.state.global_step, "resumed_from": resume and resume.rsplit("/", 1)[-1]}
    if ctx.is_main_process:
        training.write_curves(history, ctx.stage_dir / "report", ["loss", "accuracy", "margin"],
                              title=f"reward model {ctx.name}")
    # every process: under ZeRO-3/FSDP the save gathers the sharded weights (a collective) before rank 0 writes
    training.save_trained_model(trainer, tokenizer, ctx.stage_dir / "model", ctx.is_main_process)
    return StageResult(model="model", report="report", metrics=metrics)
