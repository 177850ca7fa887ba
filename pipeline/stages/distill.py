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
teacher's distributions only mean something under the template it was trained with.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pipeline.context import StageContext, StageResult
from pipeline.refs import DataRef, ModelRef
from pipeline.registry import register_stage

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
            from pipeline.trainer_check import trl_version

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
    """(token ids of the whole chat, first response token, end of the response: past its eos when it has one,
    so text the template adds after the turn is not scored)."""
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=True, return_dict=True,
                                           add_generation_prompt=True)["input_ids"]
    start = 0
    while start < min(len(full), len(prompt)) and full[start] == prompt[start]:
        start += 1
    eos = [i for i in range(start, len(full)) if full[i] == tokenizer.eos_token_id]
    return full, start, (eos[-1] + 1 if eos else len(full))


def _log_probs(model, ids, mask):
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1]
    return torch.log_softmax(logits.float().cpu(), dim=-1)


def divergence(teacher, student, tokenizer, conversations: list[list[dict]], batch_size: int = 16) -> dict:
    """Mean per-token KL(teacher || student) and JSD(0.5) over the response tokens (eos included) of `conversations`,
    each position scored on the teacher's and the student's full next-token distributions."""
    import math

    import torch

    teacher.eval()
    student.eval()
    kl_sum = jsd_sum = 0.0
    count = 0
    for start in range(0, len(conversations), batch_size):
        encoded = [_encode(tokenizer, m) for m in conversations[start:start + batch_size]]
        width = max(len(ids) for ids, _, _ in encoded)
        # right padding: with a causal mask the real tokens keep their positions and never see the pads
        ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        scored = torch.zeros_like(ids, dtype=torch.bool)
        for row, (tokens, first, end) in enumerate(encoded):
            ids[row, :len(tokens)] = torch.tensor(tokens)
            mask[row, :len(tokens)] = 1
            scored[row, first:end] = True
        t, s = _log_probs(teacher, ids, mask), _log_probs(student, ids, mask)
        vocab = min(t.shape[-1], s.shape[-1])
        t, s = t[..., :vocab], s[..., :vocab]
        target = scored[:, 1:]  # the logits at i predict token i + 1
        kl = (t.exp() * (t - s)).sum(-1)
        m = torch.logsumexp(torch.stack([t, s]), dim=0) - math.log(2)
        jsd = 0.5 * (t.exp() * (t - m)).sum(-1) + 0.5 * (s.exp() * (s - m)).sum(-1)
        kl_sum += kl[target].sum().item()
        jsd_sum += jsd[target].sum().item()
        count += int(target.sum())
    return {"kl": kl_sum / max(count, 1), "jsd": jsd_sum / max(count, 1), "tokens": count}


def load_pair(cfg: DistillStage, ctx: StageContext):
    """(teacher, student, tokenizer): the teacher's tokenizer, checked against the student's, drives the data."""
    from pipeline import models
    from pipeline.stages.sft import load_chat_model

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
    from pipeline.sft_data import holdout, render_dataset

    train = render_dataset(ctx.load_dataset(cfg.data), system_prompt=cfg.system_prompt, name="data")
    if cfg.eval_data:
        held = render_dataset(ctx.load_dataset(cfg.eval_data), system_prompt=cfg.system_prompt, name="eval_data")
        held = held.select(range(min(cfg.eval_examples, len(held))))
    else:
        train, held = holdout(train, min(cfg.eval_examples, len(train) // 10 or 1), ctx.seed)
    if cfg.max_examples and len(train) > cfg.max_examples:
        train = train.shuffle(seed=ctx.seed).select(range(cfg.max_examples))
    return train, held


def gkd_classes():
    import warnings

    with warnings.catch_warnings():  # the stage says it is experimental in its docs; no warning on every run
        warnings.filterwarnings("ignore", message=".*trl.experimental.*")
        from trl.experimental.gkd import GKDConfig, GKDTrainer
    return GKDConfig, GKDTrainer


@register_stage("distill", DistillStage, help="logit distillation teacher -> student with TRL's GKD (shared tokenizer)")
def run(cfg: DistillStage, ctx: StageContext) -> StageResult:
    """Distill cfg.teacher into cfg.student on cfg.data; writes model/, curves.json; measures KL/JSD before/after."""
    from pipeline.models import count_parameters
    from pipeline.stages.sft import finish, train
    from pipeline.training import build_trl_config

    GKDConfig, GKDTrainer = gkd_classes()
    teacher, student, tokenizer = load_pair(cfg, ctx)
    data, held = load_splits(cfg, ctx)
    before = divergence(teacher, student, tokenizer, held["messages"])
    ctx.log.info("before: KL(teacher||student) %.4f, JSD %.4f over %d held-out tokens", before["kl"],
                 before["jsd"], before["tokens"])
    args = build_trl_config(GKDConfig, cfg.trainer, ctx.stage_dir, ctx.seed,
                            {"include_num_input_tokens_seen": "non_padding"})
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
