"""Check a stage's `trainer:` keys against the installed TRL's config dataclass, naming renamed fields."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from functools import cache

# Fields TRL or transformers renamed or removed; the value is the replacement (None: removed, no replacement).
RENAMED = {
    "max_seq_length": "max_length",
    "evaluation_strategy": "eval_strategy",
    "per_gpu_train_batch_size": "per_device_train_batch_size",
    "per_gpu_eval_batch_size": "per_device_eval_batch_size",
    "no_cuda": "use_cpu",
    "use_mps_device": "use_cpu",
    "max_prompt_length": None,
    "dataset_kwargs": None,
    "overwrite_output_dir": None,
}


@cache
def config_fields(target: str) -> frozenset[str]:
    module, _, name = target.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return frozenset(f.name for f in dataclasses.fields(cls))


def trl_version() -> str:
    import trl

    return trl.__version__


def check_trainer_keys(trainer: dict, target: str) -> tuple[str, str, str] | None:
    """(key, problem, fix) for the first key the installed config class lacks, else None."""
    valid = config_fields(target)
    for key in trainer:
        if key in valid:
            continue
        where = f"not a field of {target} in the installed TRL {trl_version()}"
        if key in RENAMED:
            new = RENAMED[key]
            if new and new in valid:
                return key, f"{where} (renamed)", f"use '{new}' instead"
            return key, f"{where} (removed)", "delete it"
        close = difflib.get_close_matches(key, sorted(valid), n=1)
        return key, where, f"did you mean '{close[0]}'?" if close else f"see the fields of {target}"
    return None
