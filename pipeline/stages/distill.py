"""The `distill` stage: logit distillation of a teacher into a student that shares its tokenizer, with TRL's GKD.

    distill:
      kind: distill
      teacher: {from: cold_start}
      student: {init: tiny, layers: 2, hidden: 64}     # any model whose tokenizer is the teacher's
      data: {from: problems, split: train}             # canonical traces: their prompts (and responses) are used
      eval_data: {from: problems, split: test}         # optional; default: eval_examples rows held out from data
      trainer: {lmbda: 0.5, beta: 0.5, seq_kd: false, max_new_tokens: 64, learning_rate: 1.0e-3, max_steps: 200}

GKD (Agarwal et al. 2024, `trl.experimental.gkd`) minimises the generalised Jensen-Shannon divergence between the
teacher's and the student's next-token distributions over response tokens: with probability `lmbda` on responses
the student samples itself (on-policy), otherwise on the dataset's responses, or on teacher samples when
`seq_kd`; `beta` moves the loss from forward KL (0) through JSD (0.5) to reverse KL (1). This needs one shared
vocabulary, so tokenizers are compared first and a mismatch is a one-line error.

The stage measures what it is for: the mean per-token KL(teacher || student) and JSD between the two models on
held-out prompts + responses, before and after training (`kl_before`, `kl_after`, `jsd_before`, `jsd_after`).
The teacher's tokenizer and chat template are the ones used for the data and saved with the student, since the
teacher's distributions only mean something under the template it was trained with. Replies are tokenized as the
sft stage tokenizes them (`pipeline.training.sft_render`): after the template's generation prompt, never through the
template, so an R1-Distill template cannot drop their thinking from training or from the divergence measure.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef, ModelRef
from pipeline.run.registry import register_stage

CURVE_KEYS = ["loss", "learning_rate"]


def gkd_available() -> bool:
    """Whether the installed TRL ships trl.experimental.gkd, found without importing TRL (validate stays fast)."""
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        return False
    places = [str(Path(p) / "experimental") for p in spec.submodule_search_locations]
    return importlib.machinery.PathFinder.find_spec("gkd", places) is not None


@dataclass
class DistillStage:
    teacher: ModelRef
    student: ModelRef  # must share the teacher's tokenizer
    data: DataRef  # canonical traces (problem + response, or messages)
    trainer: dict = field(default_factory=dict)  # -> GKDConfig: lmbda, beta, seq_kd, temperature, max_new_tokens, ...
    eval_data: DataRef | None = None  # held-out traces for the divergence measure
    eval_examples: int = 64  # how many held-out rows the divergence is averaged over
    system_prompt: str | None = None
    max_examples: int | None = None
    trainer_config: ClassVar[str] = "trl.experimental.gkd.GKDConfig"

    def __post_init__(self):
        if not gkd_available():
            from pipeline.run.trainer_check import trl_version

            raise ValueError(f"the installed TRL ({trl_version()}) has no trl.experimental.gkd (GKDTrainer); "
                             "install trl>=0.20 (pip install -U trl), or distill with generate + sft instead")
        if self.eval_examples < 1:
            raise ValueError(f"eval_examples must be a positive integer, got {self.eval_examples}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be a positive integer or null, got {self.max_examples}")
        if self.trainer:
            gkd_classes()  # imported here, quietly: the recipe loader checks trainer keys against GKDConfig next


def check_same_tokenizer(teacher_tok, student_tok, teacher: str, student: str) -> None:
    """Raise a one-line ValueError unless both tokenizers map the same tokens to the same ids."""
    tv, sv = teacher_tok.get_vocab(), student_tok.get_vocab()
    if tv == sv:
        return
    only_teacher = sorted(set(tv) - set(sv))
    only_student = sorted(set(sv) - set(tv))
    moved = sorted(t for t in set(tv) & set(sv) if tv[t] != sv[t])
    example = (f"{only_teacher[0]!r} only in the teacher's" if only_teacher else
               f"{only_student[0]!r} only in the student's" if only_student else f"{moved[0]!r} has another id")
    raise ValueError(f"distill: teacher {teacher} and student {student} have different tokenizers ({len(tv)} vs "
                     f"{len(sv)} tokens; {example}); GKD compares next-token distributions over one shared "
                     "vocabulary: pick a student from the teacher's model family, or distill with generate + sft")


def align_vocab(teacher, student, tokenizer, log) -> None:
    """Same tokenizer but differently padded embedding tables (common across sizes of one family): give the
    student the teacher's row count, since GKD compares full logit vectors. Rows past the tokenizer are unused."""
    t_rows = teacher.get_input_embeddings().weight.shape[0]
    s_rows = student.get_input_embeddings().weight.shape[0]
    if t_rows != s_rows and len(tokenizer) <= min(t_rows, s_rows):
        log.info("resizing the student's embeddings from %d to the teacher's %d rows", s_rows, t_rows)
        student.resize_token_embeddings(t_rows)


def _encode(tokenizer, messages: list[dict]) -> tuple[list[int], int, int]:
    """(token ids of the chat, first response token, its end): rendered as the sft stage renders a reply (its
    thinking kept, whatever the template does to assistant turns, ended by the turn-end token)."""
    from pipeline.training import models
    from pipeline.training.sft_render import tokenize_prompt_completion, turn_end_id

    row = tokenize_prompt_completion(tokenizer, messages, turn_end_id(tokenizer), models.uses_bos(tokenizer))
    return row["input_ids"], row["completion_mask"].index(1), len(row["input_ids"])


# float32 elements of one block of log-probabilities (256 MB): a block holds LOGIT_BUDGET // vocabulary positions
LOGIT_BUDGET = 2 ** 26


def _final_hidden(model, tokens: list[int]):
    """The last hidden states of one sequence, [length, hidden]: the logits are taken from them block by block."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        return model.base_model(input_ids=torch.tensor([tokens], device=device)).last_hidden_state[0]


def _block_log_probs(model, hidden, positions, vocab: int):
    """float32 log-softmax over the model's full vocabulary at `positions`, cut to the first `vocab` entries."""
    import torch

    with torch.no_grad():
        logits = model.get_output_embeddings()(hidden[positions.to(hidden.device)]).float()
    return torch.log_softmax(logits, dim=-1)[:, :vocab]


def divergence(teacher, student, tokenizer, conversations: list[list[dict]], logit_budget: int = LOGIT_BUDGET) -> dict:
    """Mean per-token KL(teacher || student) and JSD(0.5) over the response tokens (eos included) of `conversations`,
    each position scored on the teacher's and the student's full next-token distributions.

    Memory stays bounded whatever the vocabulary and length: one sequence at a time, the language-model head applied
    to blocks of at most `logit_budget // vocabulary` scored positions (the prompt's positions are never projected).
    Whole batches of full log-softmax tensors, as before, would be ~100 GB of float32 at 152k tokens x 16k positions.
    Shortcut: logits are the output embedding applied to the base model's last hidden state, which is what Llama,
    Qwen and Mistral models compute (a model with logit soft-capping would need its own head here)."""
    import math

    import torch

    teacher.eval()
    student.eval()
    vocab = min(teacher.get_output_embeddings().weight.shape[0], student.get_output_embeddings().weight.shape[0])
    step = max(1, logit_budget // vocab)
    kl_sum = jsd_sum = 0.0
    count = blocks = 0
    for messages in conversations:
        tokens, first, end = _encode(tokenizer, messages)
        positions = torch.arange(max(first, 1) - 1, end - 1)  # the logits at i predict token i + 1
        if not len(positions):
            continue
        t_hidden, s_hidden = _final_hidden(teacher, tokens), _final_hidden(student, tokens)
        for block in positions.split(step):
            t = _block_log_probs(teacher, t_hidden, block, vocab)
            s = _block_log_probs(student, s_hidden, block, vocab).to(t.device)
            m = torch.logsumexp(torch.stack([t, s]), dim=0) - math.log(2)
            kl_sum += (t.exp() * (t - s)).sum().item()
            jsd_sum += (0.5 * (t.exp() * (t - m)).sum() + 0.5 * (s.exp() * (s - m)).sum()).item()
            count += len(block)
            blocks += 1
    return {"kl": kl_sum / max(count, 1), "jsd": jsd_sum / max(count, 1), "tokens": count, "blocks": blocks}


def load_pair(cfg: DistillStage, ctx: StageContext):
    """(teacher, student, tokenizer): the teacher's tokenizer, checked against the student's, drives the data."""
    from pipeline.stages.sft import load_chat_model
    from pipeline.training import models

    teacher, tokenizer = load_chat_model(cfg.teacher, ctx)
    student, student_tok = ctx.load_model(cfg.student, check_eos=False)
    check_same_tokenizer(tokenizer, student_tok, cfg.teacher.describe(), cfg.student.describe())
    models.prepare_for_chat(student, tokenizer)
    student.generation_config.eos_token_id = teacher.generation_config.eos_token_id
    models.check_eos_agreement(tokenizer, student.generation_config, source=f"student {cfg.student.describe()}")
    align_vocab(teacher, student, tokenizer, ctx.log)
    return teacher, student, tokenizer


def load_splits(cfg: DistillStage, ctx: StageContext):
    """(train, held_out) `messages` datasets; held_out comes from eval_data or is held out of data."""
    from pipeline.training.sft_data import holdout, render_dataset

    train = render_dataset(ctx.load_dataset(cfg.data), system_prompt=cfg.system_prompt, name="data")
    if cfg.eval_data:
        held = render_dataset(ctx.load_dataset(cfg.eval_data), system_prompt=cfg.system_prompt, name="eval_data")
        held = held.select(range(min(cfg.eval_examples, len(held))))
    else:
        train, held = holdout(train, min(cfg.eval_examples, len(train) // 10 or 1), ctx.seed)
    if cfg.max_examples and len(train) > cfg.max_examples:
        train = train.shuffle(seed=ctx.seed).select(range(cfg.max_examples))
    return train, held


def training_rows(data, tokenizer, max_length: int | None, log):
    """The rows GKD trains on, tokenized as the sft stage tokenizes prompt/completion pairs and checked the same way:
    given only `messages`, GKD's collator would render replies through the template, and R1-Distill or Qwen3
    templates drop the thinking. `messages` stays: the collator reads the prompt from it."""
    from pipeline.training.sft_render import check_rendered_example, tokenize_dataset

    log.info("checked example 0 as it will be trained: %s",
             check_rendered_example(tokenizer, data[0]["messages"], "completion"))
    return tokenize_dataset(data, tokenizer, keep_messages=True, max_length=max_length)


def gkd_classes():
    import warnings

    with warnings.catch_warnings():  # the stage says it is experimental in its docs; no warning on every run
        warnings.filterwarnings("ignore", message=".*trl.experimental.*")
        from trl.experimental.gkd import GKDConfig, GKDTrainer
    return GKDConfig, GKDTrainer


@register_stage("distill", DistillStage, help="logit distillation teacher -> student with TRL's GKD (shared tokenizer)")
def run(cfg: DistillStage, ctx: StageContext) -> StageResult:
    """Distill cfg.teacher into cfg.student on cfg.data; writes model/, curves.json; measures KL/JSD before/after."""
    from pipeline.stages.sft import finish, train
    from pipeline.training.common import build_trl_config
    from pipeline.training.models import count_parameters

    GKDConfig, GKDTrainer = gkd_classes()
    teacher, student, tokenizer = load_pair(cfg, ctx)
    data, held = load_splits(cfg, ctx)
    before = divergence(teacher, student, tokenizer, held["messages"])
    ctx.log.info("before: KL(teacher||student) %.4f, JSD %.4f over %d held-out tokens", before["kl"],
                 before["jsd"], before["tokens"])
    args = build_trl_config(GKDConfig, cfg.trainer, ctx.stage_dir, ctx.seed,
                            {"include_num_input_tokens_seen": "non_padding"})
    data = training_rows(data, tokenizer, args.max_length, ctx.log)
    trainer = GKDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                         processing_class=tokenizer)
    params = count_parameters(student)
    output, resumed = train(trainer, args, ctx, params)
    after = divergence(teacher, trainer.model, tokenizer, held["messages"])
    ctx.log.info("after: KL(teacher||student) %.4f, JSD %.4f", after["kl"], after["jsd"])
    saved = finish(trainer, tokenizer, ctx, f"distill: {ctx.name}", CURVE_KEYS)
    metrics = {
        "kl_before": before["kl"], "kl_after": after["kl"], "jsd_before": before["jsd"], "jsd_after": after["jsd"],
        "divergence_tokens": before["tokens"], "divergence_examples": len(held), "train_loss": output.training_loss,
        **saved, "examples": len(data), "params": params, "teacher_params": count_parameters(teacher),
        "lmbda": args.lmbda, "beta": args.beta, "seq_kd": args.seq_kd, **resumed,
    }
    return StageResult(model="model", report="curves.json", metrics=metrics)
