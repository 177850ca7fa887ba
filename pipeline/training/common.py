"""What every training stage shares: TRL config with hardware-aware defaults, resume, curves, ledger feed."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from pathlib import Path

from pipeline.run.artifacts import atomic_write_json

log = logging.getLogger(__name__)


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def hardware_defaults() -> dict:
    """TRL defaults to bf16 and gradient checkpointing; on CPU both cost time for small models (TRL-ON-CPU.md)."""
    if on_gpu():
        return {"bf16": True}
    return {"use_cpu": True, "bf16": False, "gradient_checkpointing": False, "dataloader_pin_memory": False}


def build_trl_config(config_cls, trainer: dict, output_dir: Path, seed: int, stage_defaults: dict | None = None):
    """Our defaults < the stage's defaults < the recipe's `trainer:` dict, which goes to TRL unchanged."""
    values = _checkpointing_name(config_cls, {
        "output_dir": str(output_dir / "checkpoints"), "seed": seed, "report_to": "none", "logging_steps": 10,
        "save_strategy": "steps", "save_steps": 200, "save_total_limit": 2, "disable_tqdm": False,
        **hardware_defaults(), **(stage_defaults or {}), **yaml_scientific_to_float(trainer),
    }, trainer)
    return config_cls(**values)


def _checkpointing_name(config_cls, values: dict, trainer: dict) -> dict:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing: use the new name for our default
    when the installed version has it, and keep whatever name the recipe itself wrote."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}
    if "activation_checkpointing" in names and "gradient_checkpointing" not in trainer and \
            "gradient_checkpointing" in values and "activation_checkpointing" not in values:
        values["activation_checkpointing"] = values.pop("gradient_checkpointing")
    return values


CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
                "adapter_model.safetensors", "adapter_model.bin")


def checkpoint_is_complete(folder: Path) -> bool:
    """transformers writes checkpoint-N/ in place, weights first and trainer_state.json last (not atomically), and
    rotates old ones out with rmtree: a folder is complete when its state parses and its weights are there."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    weights = any((folder / name).is_file() for name in WEIGHT_FILES) or any(folder.glob("global_step*"))
    return isinstance(state, dict) and "global_step" in state and weights


def last_checkpoint(config) -> str | None:
    """The newest COMPLETE checkpoint in the stage's checkpoint folder, so an interrupted stage resumes, not restarts.

    Every training stage (sft, distill, grpo, reward_model) resumes through here. A checkpoint that a kill left
    half-written is moved aside to `incomplete_checkpoints/` beside the checkpoint folder (outside it, so the
    trainer's rotation never counts it) with a log line, and the next newest complete one is used.
    """
    folder = Path(config.output_dir)
    if not folder.is_dir():
        return None
    found = sorted((p for p in folder.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)),
                   key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)), reverse=True)
    for checkpoint in found:
        if checkpoint_is_complete(checkpoint):
            log.info("resuming from %s", checkpoint)
            return str(checkpoint)
        aside = folder.parent / "incomplete_checkpoints" / f"{checkpoint.name}.{time.strftime('%Y%m%dT%H%M%S')}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(checkpoint, aside)
        log.warning("%s is incomplete (interrupted while saving): moved to %s; resuming from an older one",
                    checkpoint, aside)
    return None


def write_curves(log_history: list[dict], stage_dir: Path, keys: list[str], title: str) -> dict:
    """log_history -> curves.json (every logged key) and curves.png (the keys asked for that were logged)."""
    series: dict[str, list] = {}
    for entry in log_history:
        step = entry.get("step")
        for key, value in entry.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, []).append([step, value])
    atomic_write_json(stage_dir / "curves.json", series)
    present = [k for k in keys if k in series]
    if present:
        plot_series({k: series[k] for k in present}, stage_dir / "curves.png", title)
    return series


def plot_series(series: dict[str, list], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.4), squeeze=False)
    for ax, (key, points) in zip(axes[0], series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def ledger_callback(attempt, params: int, teacher=None):
    """A transformers callback that feeds the ledger with the tokens the trainer has seen, the model's shape and the
    token-weighted mean length of the training sequences (the attention term of compute.py; measured by a forward
    pre-hook on the training model); with `teacher` (logit distillation), one teacher forward per trained token."""
    from transformers import TrainerCallback

    from pipeline.run import compute

    teacher_shape = compute.shape_of(teacher) if teacher is not None else None

    class LedgerCallback(TrainerCallback):
        def __init__(self):
            self.reported, self.shape, self.lengths = 0, None, [0, 0]  # lengths: sum(T), sum(T^2) since last log
            self.step = 0

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.step = state.global_step  # a resumed run starts at its checkpoint's step
            if model is not None:
                self.shape = compute.shape_of(model)
                model.register_forward_pre_hook(self._count, with_kwargs=True)

        def _count(self, module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None or not module.training:
                return
            lengths = sequence_lengths(ids, kwargs.get("attention_mask"), kwargs.get("position_ids")).double()
            self.lengths[0] += float(lengths.sum())
            self.lengths[1] += float((lengths ** 2).sum())

        def on_log(self, args, state, control, **kwargs):
            seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
            if seen > self.reported:
                context = self.lengths[1] / self.lengths[0] if self.lengths[0] else 0.0
                extra = {"teacher": teacher_shape, "tokens_teacher": seen - self.reported} if teacher_shape else {}
                # every log step: the ledger's progress file (and so a killed attempt's row) follows the training
                attempt.add(params=params, model=self.shape, context=context, tokens_trained=seen - self.reported,
                            steps=state.global_step - self.step, **extra)
                self.reported, self.lengths, self.step = seen, [0, 0], state.global_step

        def on_save(self, args, state, control, **kwargs):
            attempt.save_progress()

    attempt.add(params=params)
    return LedgerCallback()


def sequence_lengths(ids, mask=None, positions=None):
    """The length of every sequence in a training batch: from the attention mask (padded rows), from where the
    position ids restart at 0 (padding-free packed rows, whose sequences do not attend to each other), else whole
    rows."""
    import torch

    if mask is not None and mask.dim() == 2:
        return mask.sum(-1)
    if positions is not None:
        flat = positions.reshape(-1)
        starts = torch.nonzero(flat == 0).flatten()
        if len(starts) and starts[0] == 0:
            return torch.diff(torch.cat([starts, starts.new_tensor([flat.numel()])]))
    return ids.new_full(ids.shape[:1], ids.shape[-1])


def final_metrics(log_history: list[dict]) -> dict:
    """The last value of each logged scalar, e.g. train_loss, runtime, the final reward."""
    out: dict = {}
    for entry in log_history:
        for key, value in entry.items():
            if isinstance(value, (int, float)):
                out[key] = value
    return json.loads(json.dumps(out))


def yaml_scientific_to_float(trainer: dict) -> dict:
    """`trainer:` values with numbers PyYAML left as strings ("1e-5": YAML 1.1 wants "1.0e-5") made floats; TRL
    would otherwise fail deep inside TrainingArguments with a type error that names no key."""
    import re

    pattern = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
    return {k: float(v) if isinstance(v, str) and pattern.fullmatch(v.strip()) else v for k, v in trainer.items()}


def wait_for_everyone() -> None:
    """Block until every process of an `accelerate launch` gets here; returns at once in a single process."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    from accelerate import PartialState

    PartialState(cpu=not on_gpu()).wait_for_everyone()


def save_trained_model(trainer, tokenizer, folder: Path, is_main_process: bool = True) -> None:
    """Save the trained model + tokenizer (with chat template) + generation config into `folder`, atomically.

    Call it on EVERY process: under ZeRO-3 or FSDP the weights are sharded and `trainer.save_model` gathers them
    (a collective; 16-bit under ZeRO-3 with zero3_save_16bit_model) before rank 0 writes. Rank 0 writes into a
    temporary folder that replaces `folder` whole; the other ranks only take part in the gather. Raises when the
    trainer wrote no weights (ZeRO-3 without the 16-bit gather saves a DeepSpeed checkpoint instead).
    """
    from pipeline.run.artifacts import atomic_dir

    folder = Path(folder)
    if not is_main_process:
        trainer.save_model(str(folder.with_name(f".{folder.name}.rank.tmp")))  # writes nothing on these ranks
        return
    with atomic_dir(folder) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(tmp)
        if not any(tmp.glob("*.safetensors")) and not any(tmp.glob("pytorch_model*.bin")):
            raise RuntimeError(f"no model weights were saved to {folder}: under ZeRO-3 set zero3_save_16bit_model: "
                               "true in the accelerate config; under FSDP, fsdp_state_dict_type: FULL_STATE_DICT")
