"""The `sft` stage: supervised fine-tuning on chain-of-thought traces with TRL's SFTTrainer.

    cold_start:
      kind: sft
      model: {init: tiny, layers: 4, hidden: 256}     # or a hub id / path / {from: STAGE}
      data: [{from: problems, split: train}, {path: extra.jsonl, weight: 0.5}]
      trainer: {learning_rate: 1.0e-3, num_train_epochs: 3, per_device_train_batch_size: 32, max_length: 512}

What it does, in order: load the model and make it chat-ready (our template when it has none, a pad token, think
tokens when asked) and refuse to train when the EOS that ends an assistant turn is not the tokenizer's and the
generation config's eos (a model that never learns to stop looks healthy in the loss); render the traces as chat
messages (a list of datasets is a weighted, seeded mixture); count the examples max_length will truncate; train,
resuming from the newest checkpoint in the stage dir; save model + tokenizer + template into `model/`, loss curves
into `curves.json`/`curves.png`, and the tokens trained into the ledger.

The loss covers the assistant turn only (assistant_only_loss, through the template's {% generation %} markers,
which include the eos). When a model's own template has no markers and TRL knows no patched version of it, or
when rendering through it loses the thinking (R1-Distill and Qwen3 templates keep only what follows `</think>`),
the rows become prompt/completion pairs that the stage tokenizes itself and the loss covers the completion only;
the log says so. Either way one example is rendered as training renders it and checked before any step
(`pipeline.training.sft_render.check_rendered_example`): a reply that lost its thinking, answer or turn end stops the stage.
A recipe `max_length` above the model's max_position_embeddings stops it too (raise the limit with
`model: {path: ..., config_overrides: {max_position_embeddings: N}}`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef, ModelRef
from pipeline.run.registry import register_stage

CURVE_KEYS = ["loss", "mean_token_accuracy", "learning_rate"]

# The trainer settings each loss mode needs; they override the recipe's because they follow from its choice.
LOSS_SETTINGS = {
    "assistant": {"assistant_only_loss": True},
    "completion": {"assistant_only_loss": False, "completion_only_loss": True},
    "full": {"assistant_only_loss": False, "completion_only_loss": False},
}


@dataclass
class SFTStage:
    model: ModelRef  # hub id / path / {from: STAGE} / {init: tiny, layers, hidden, ...}
    data: DataRef | list[DataRef]  # canonical traces; a list is a mixture, each DataRef sampled by its weight
    trainer: dict = field(default_factory=dict)  # -> trl.SFTConfig, checked against its fields at load time
    answers_only: bool = False  # train on final answers without the thinking (the distillation baseline)
    add_think_tokens: bool = False  # add <think>/</think> to the vocabulary and resize the embeddings
    system_prompt: str | None = None  # prepended as a system turn to every example
    max_examples: int | None = None  # a seeded random subset of the (mixed) data
    eos_token: str | None = None  # the token that ends a turn, when a base model's config disagrees (<|im_end|>)
    trainer_config: ClassVar[str] = "trl.SFTConfig"

    def __post_init__(self):
        refs = self.data_refs()
        if not refs:
            raise ValueError("data is an empty list; give a dataset ({from: STAGE}) or a list of them")
        for i, ref in enumerate(refs):
            if not ref.weight > 0:
                raise ValueError(f"data[{i}].weight must be > 0, got {ref.weight}; drop that dataset instead")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be a positive integer or null, got {self.max_examples}")

    def data_refs(self) -> list[DataRef]:
        return list(self.data) if isinstance(self.data, list) else [self.data]


def throughput_defaults(gpu: bool, trainer: dict) -> dict:
    """How batches avoid paying for padding, unless the recipe chose. On GPU: padding-free packing (best-fit
    decreasing, so no sequence is cut in two). On CPU: length-grouped batches, since packing without FlashAttention
    attends over one long row, several times slower per step than short padded rows on a CPU."""
    if {"packing", "padding_free", "train_sampling_strategy"} & set(trainer):
        return {}
    if gpu:
        return {"packing": True, "packing_strategy": "bfd", "padding_free": True}
    return {"train_sampling_strategy": "group_by_length"}


def stage_defaults(trainer: dict) -> dict:
    from pipeline.training.common import on_gpu

    # non_padding: the ledger's FLOPs are 6 x params x real tokens, not x padded batch area
    return {"include_num_input_tokens_seen": "non_padding", **throughput_defaults(on_gpu(), trainer)}


def load_chat_model(ref: ModelRef, ctx: StageContext, add_think_tokens: bool = False,
                    eos_token: str | None = None):
    """(model, tokenizer) made chat-ready, after checking that the turn-ending EOS will stop generation."""
    from pipeline.training import models

    model, tokenizer = ctx.load_model(ref, add_think_tokens=add_think_tokens, check_eos=False)
    models.prepare_for_chat(model, tokenizer, add_think_tokens=add_think_tokens)
    if eos_token:
        models.set_turn_end(model, tokenizer, eos_token)
    models.check_eos_agreement(tokenizer, model.generation_config, source=f"model {ref.describe()}")
    return model, tokenizer


def load_examples(refs: list[DataRef], ctx: StageContext, answers_only: bool, system_prompt: str | None,
                  max_examples: int | None):
    """The training rows as a `messages` Dataset: each source rendered, mixed by weight, capped."""
    from pipeline.training.sft_data import mix, render_dataset

    rendered = [render_dataset(ctx.load_dataset(ref), answers_only, system_prompt, name=f"data {ref.describe()}")
                for ref in refs]
    data = mix(rendered, [ref.weight for ref in refs], ctx.seed)
    if max_examples and len(data) > max_examples:
        data = data.shuffle(seed=ctx.seed).select(range(max_examples))
    return data


def choose_loss_mode(tokenizer, trainer: dict, example: list[dict], log) -> str:
    """'assistant' (TRL renders the chat, loss on the assistant turn), 'completion' (prompt/completion pairs the
    stage tokenizes, loss on the completion) or 'full' (those pairs, loss on every token). Assistant loss is used
    only when rendering `example` that way keeps its thinking, answer, turn end and BOS."""
    from pipeline.training.sft_render import check_rendered_example, training_template

    if not trainer.get("assistant_only_loss", True):
        return "completion" if trainer.get("completion_only_loss") else "full"
    if training_template(tokenizer) is None:
        log.warning("the chat template has no {% generation %} markers and TRL has no patched version of it: "
                    "training on prompt/completion pairs with completion-only loss instead of assistant_only_loss")
        return "completion"
    try:
        check_rendered_example(tokenizer, example, "assistant")
    except ValueError as error:
        log.warning("%s. Training on prompt/completion pairs with completion-only loss instead", error)
        return "completion"
    return "assistant"


def measure_lengths(data, tokenizer, args, log) -> tuple[object, dict]:
    """Count what max_length will cut before training, and add the `length` column the length-grouped sampler
    reads (instead of tokenizing the whole dataset again)."""
    from pipeline.training.sft_data import length_report, token_lengths

    lengths = token_lengths(data, tokenizer) if "messages" in data.column_names else \
        [len(ids) for ids in data["input_ids"]]
    report = length_report(lengths, args.max_length)
    verb = "split across packed rows" if args.packing and args.packing_strategy != "bfd" else "truncated"
    log.info("%d examples, longest %d tokens, median %d; %d longer than max_length=%s will be %s",
             report["examples"], report["longest"], report["median"], report["truncated"], args.max_length, verb)
    if args.max_length:
        lengths = [min(n, args.max_length) for n in lengths]
    return data.add_column(args.length_column_name, lengths), report


def resume_point(args) -> tuple[str | None, int, int]:
    """(checkpoint, its global step, its tokens seen); (None, 0, 0) for a fresh start."""
    from pipeline.training.common import last_checkpoint

    checkpoint = last_checkpoint(args)
    if not checkpoint:
        return None, 0, 0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return checkpoint, int(state.get("global_step", 0)), int(state.get("num_input_tokens_seen", 0) or 0)


def train(trainer, args, ctx: StageContext, params: int) -> tuple[object, dict]:
    """trainer.train(), resuming from the newest checkpoint; the ledger gets only this attempt's tokens."""
    from pipeline.training.common import ledger_callback

    checkpoint, start_step, start_tokens = resume_point(args)
    if checkpoint:
        ctx.log.info("resuming from %s (step %d)", checkpoint, start_step)
    ledger = ledger_callback(ctx.ledger, params, teacher=getattr(trainer, "teacher_model", None))  # distill's
    ledger.reported = start_tokens  # tokens before the checkpoint belong to the attempt that was interrupted
    trainer.add_callback(ledger)
    output = trainer.train(resume_from_checkpoint=checkpoint)
    return output, {"resumed_from": Path(checkpoint).name if checkpoint else None, "start_step": start_step}


def finish(trainer, tokenizer, ctx: StageContext, title: str, curve_keys: list[str] = CURVE_KEYS) -> dict:
    """Save model + tokenizer + template (every process joins the save: sharded weights are gathered) and the
    curves (main process only); the last logged loss."""
    from pipeline.training import common as training

    history = trainer.state.log_history
    training.save_trained_model(trainer, tokenizer, ctx.stage_dir / "model", ctx.is_main_process)
    if ctx.is_main_process:
        training.write_curves(history, ctx.stage_dir, curve_keys, title)
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {"final_loss": losses[-1] if losses else None, "global_step": trainer.state.global_step,
            "tokens": int(trainer.state.num_input_tokens_seen or 0)}


def build_trainer(model, tokenizer, data, trainer: dict, stage_dir: Path, seed: int, log):
    """An SFTTrainer on `messages` rows with the stage's defaults and loss mode: (trainer, args, mode, lengths).
    Before any step, the first example is rendered the way training renders it and checked (see sft_render)."""
    from trl import SFTConfig, SFTTrainer

    from pipeline.training.common import build_trl_config
    from pipeline.training.sft_render import check_rendered_example, tokenize_dataset

    example = data[0]["messages"]
    mode = choose_loss_mode(tokenizer, trainer, example, log)
    log.info("checked example 0 as it will be trained: %s", check_rendered_example(tokenizer, example, mode))
    if mode != "assistant":
        data = tokenize_dataset(data, tokenizer)
    args = build_trl_config(SFTConfig, {**trainer, **LOSS_SETTINGS[mode]}, stage_dir, seed, stage_defaults(trainer))
    check_max_length(trainer.get("max_length"), model)  # TRL's default (1024) is not the recipe's choice
    data, lengths = measure_lengths(data, tokenizer, args, log)
    return SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer), args, mode, lengths


def check_max_length(max_length: int | None, model) -> None:
    """Refuse to train on sequences longer than the positions the model's config allows."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if max_length and limit and max_length > limit:
        name = getattr(model.config, "_name_or_path", "") or "MODEL"
        raise ValueError(f"sft: trainer.max_length {max_length} is more than the model's max_position_embeddings "
                         f"{limit}; lower max_length, or raise the limit with model: {{path: {name}, config_overrides:"
                         f" {{max_position_embeddings: {max_length}}}}}")


@register_stage("sft", SFTStage, help="supervised fine-tuning on chat-rendered traces (TRL SFTTrainer)")
def run(cfg: SFTStage, ctx: StageContext) -> StageResult:
    """Fine-tune cfg.model on cfg.data; writes model/, curves.json, curves.png; resumes from checkpoints/."""
    from pipeline.training.models import count_parameters

    model, tokenizer = load_chat_model(cfg.model, ctx, cfg.add_think_tokens, cfg.eos_token)
    data = load_examples(cfg.data_refs(), ctx, cfg.answers_only, cfg.system_prompt, cfg.max_examples)
    trainer, args, mode, lengths = build_trainer(model, tokenizer, data, cfg.trainer, ctx.stage_dir, ctx.seed,
                                                 ctx.log)
    params = count_parameters(model)
    output, resumed = train(trainer, args, ctx, params)
    saved = finish(trainer, tokenizer, ctx, f"sft: {ctx.name}")
    metrics = {
        "train_loss": output.training_loss, **saved, "examples": lengths["examples"],
        "truncated": lengths["truncated"], "max_length": args.max_length, "longest": lengths["longest"],
        # TRL drops rows that truncation left with no trained token; packed rows are not comparable
        "dropped": None if args.packing else lengths["examples"] - len(trainer.train_dataset), "loss_mode": mode,
        "params": params, "answers_only": cfg.answers_only, "train_runtime": output.metrics.get("train_runtime"),
        **resumed,
    }
    ctx.log.info("sft done: %s", metrics)
    return StageResult(model="model", report="curves.json", metrics=metrics)
