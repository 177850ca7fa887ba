"""Recipe checks against the world, run when a recipe loads: do its local paths exist, do its released names have a
card, are its trainer values numbers in range. Each returns (key path, problem, fix) or None; `pipeline.run.recipe`
turns that into a RecipeError, so a bad recipe stops before any stage runs rather than mid-run with a traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
from functools import cache
from pathlib import Path

from pipeline.data.sources import FILE_BUILDERS, SUPPORTED, looks_local
from pipeline.run.refs import DataRef, ModelRef

Problem = tuple[str, str, str]


def first_ref_problem(config, where: str) -> Problem | None:
    """The first model or data reference in a stage config whose path is missing or whose released name is unknown."""
    for key, ref in _refs(config, where, set()):
        problem = _data_problem(ref, key) if isinstance(ref, DataRef) else _model_problem(ref, key)
        if problem:
            return problem
    return None


def _refs(value, where: str, seen: set):
    """(key path, ref) of every ModelRef/DataRef inside a config value (containers shared by aliases walked once)."""
    if isinstance(value, (ModelRef, DataRef)):
        yield where, value
        return
    if id(value) in seen:
        return
    if isinstance(value, dict):
        seen.add(id(value))
        for k, v in value.items():
            yield from _refs(v, f"{where}.{k}", seen)
    elif isinstance(value, (list, tuple)):
        seen.add(id(value))
        for i, v in enumerate(value):
            yield from _refs(v, f"{where}[{i}]", seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        seen.add(id(value))
        for f in dataclasses.fields(value):
            yield from _refs(getattr(value, f.name), f"{where}.{f.name}", seen)


def _data_problem(ref: DataRef, key: str) -> Problem | None:
    if ref.released:
        from pipeline.data.released import card_names

        names = card_names()
        if ref.released not in names:
            close = difflib.get_close_matches(ref.released, names, n=1)
            return (f"{key}.released", f"unknown released dataset '{ref.released}'",
                    (f"did you mean '{close[0]}'? " if close else "") + f"use one of: {', '.join(names)}")
    if not ref.path:
        return None
    path = Path(ref.path).expanduser()
    if path.is_file() and path.suffix.lower() not in FILE_BUILDERS:
        return key, f"'{ref.path}': cannot read a '{path.suffix}' file", f"give {SUPPORTED}"
    if not path.exists() and (looks_local(ref.path) or ref.released):
        return key, f"'{ref.path}': no such file or folder", _path_fix()
    return None


def _model_problem(ref: ModelRef, key: str) -> Problem | None:
    if not ref.path:
        return None
    path = Path(ref.path).expanduser()
    if path.is_file():
        return (key, f"'{ref.path}' is a file",
                "give a folder written by save_pretrained, or a hub id like Qwen/Qwen2.5-0.5B")
    if not path.exists() and looks_local(ref.path):
        return key, f"'{ref.path}': no such model folder", _path_fix()
    return None


def _path_fix() -> str:
    return f"check the path (relative paths start at the folder you run in, {Path.cwd()})"


# Trainer values whose wrong setting TRL accepts and fails on only mid-run (or never): name -> (test, must be)
_RANGES = {
    **{name: (lambda v: v >= 1, "a whole number >= 1") for name in (
        "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
        "num_generations", "max_completion_length", "max_length", "steps_per_generation", "num_iterations")},
    **{name: (lambda v: v >= 0, "a number >= 0") for name in (
        "learning_rate", "weight_decay", "warmup_steps", "max_grad_norm", "beta", "seed")},
    "max_steps": (lambda v: v == -1 or v >= 1, "a number of steps >= 1, or -1 to train for num_train_epochs"),
    "num_train_epochs": (lambda v: v > 0, "a number > 0"),
    "temperature": (lambda v: v > 0, "a number > 0"),
}
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def check_trainer_values(trainer: dict, target: str) -> Problem | None:
    """(key, problem, fix) for the first trainer value of the wrong type (a word where the config field is a number
    or a flag) or out of range; None when all pass. Keys the config lacks are `trainer_check`'s business."""
    types = _config_types(target)
    for key, value in trainer.items():
        kinds = types.get(key)
        if kinds is None or value is None and "None" in kinds:
            continue
        if kinds <= {"bool", "None"}:
            if not isinstance(value, bool):
                return key, f"expected true or false, got {value!r}", f"write {key}: true"
            continue
        if not kinds <= {"int", "float", "None"}:
            continue  # strings, enums, lists: TRL checks them itself
        number = _as_number(value)
        if number is None:
            return key, f"expected a number, got {value!r}", f"write e.g. {key}: {_example(key, kinds)}"
        if "float" not in kinds and number != int(number):
            return key, f"expected a whole number, got {value!r}", f"write e.g. {key}: {int(number) or 1}"
        test, what = _RANGES.get(key, (None, None))
        if test and not test(number):
            return key, f"{value!r} is out of range", f"give {what}"
    return None


@cache
def _config_types(target: str) -> dict[str, frozenset[str]]:
    """{field: the names in its annotation}: int | None -> {"int", "None"}; an enum or Literal adds its own name."""
    module, _, name = target.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    types = {}
    for f in dataclasses.fields(cls):
        text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        types[f.name] = frozenset(re.findall(r"[A-Za-z_][\w.]*", text.replace("NoneType", "None"))) - {"typing",
                                                                                                     "Optional"}
    return types


def _as_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)  # YAML reads 1e-3 as a string; pipeline.training.common turns it into a float
    return None


def _example(key: str, kinds: set) -> str:
    return "1.0e-5" if "rate" in key else "1" if "float" not in kinds else "1.0"
