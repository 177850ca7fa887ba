"""References from one stage's config to a model or a dataset: a hub id, a local path, or another stage's output.

In YAML a model field is a string (hub id or path), `{from: STAGE}`, or `{init: tiny, layers: 2, ...}`; a data field
is a string, `{from: STAGE, split: train}`, `{released: openr1-math-220k}` (with `path:` at a local copy of its raw
files, `keep: all` for every generation), or `{path: x.jsonl, split: test}`.

Parsing checks only the shape of a reference (its keys and their types); whether a path exists or a released name
has a card is checked when a recipe loads (`pipeline.run.recipe_checks`).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields

KEEP = ("correct", "all")  # DataRef.keep of a released dataset; default "correct" (see load_released)


class RefError(ValueError):
    """A reference's problem, the fix, and the key inside the reference it is about ('' for the whole)."""

    def __init__(self, problem: str, fix: str = "", key: str = ""):
        self.problem, self.fix, self.key = problem, fix, key
        super().__init__((f"{key}: " if key else "") + problem + (f"; {fix}" if fix else ""))


@dataclass(frozen=True)
class ModelRef:
    path: str | None = None  # hub id or local folder
    stage: str | None = None  # {from: STAGE}: the model that stage saved
    init: dict | None = None  # {init: tiny, ...}: a fresh random-init model, built offline
    trust_remote_code: bool = False
    # values set on the model's config before its weights load, and saved with it (pipeline.training.models.load_config)
    config_overrides: dict = field(default_factory=dict)

    def describe(self) -> str:
        return self.path or (f"from:{self.stage}" if self.stage else f"init:{self.init}")


@dataclass(frozen=True)
class DataRef:
    path: str | None = None  # hub id, local file or folder
    stage: str | None = None  # {from: STAGE}
    released: str | None = None  # a released CoT dataset by its data card name
    split: str | None = None
    limit: int | None = None
    weight: float = 1.0  # for mixtures of several datasets
    columns: dict = field(default_factory=dict)  # rename map {their_name: our_name}
    keep: str | None = None  # released only: "correct" (default: marked correct and complete) or "all"

    def describe(self) -> str:
        base = self.path or self.released or f"from:{self.stage}"
        return base + (f"[{self.split}]" if self.split else "")


def _ref_keys(cls) -> set[str]:
    return {f.name for f in fields(cls)} - {"stage"} | {"from"}


def parse_model_ref(value) -> ModelRef:
    """str | {from} | {init, ...} -> ModelRef; raises ValueError(problem, fix) on anything else."""
    if isinstance(value, ModelRef):
        return value
    if isinstance(value, str) and value:
        return ModelRef(path=value)
    if isinstance(value, dict):
        if "init" in value:
            return ModelRef(init=_tiny_params(value))
        return _parse_dict(ModelRef, value)
    raise RefError(f"expected a hub id or path, {{from: STAGE}} or {{init: tiny, ...}}, got {value!r}")


def _tiny_params(value: dict) -> dict:
    from pipeline.training.models import TINY_DEFAULTS

    if value["init"] != "tiny":
        raise RefError(f"unknown init '{value['init']}'", "use {init: tiny, layers: 2, hidden: 64}", key="init")
    params = {k: v for k, v in value.items() if k != "init"}
    for key, v in params.items():
        if key not in TINY_DEFAULTS:
            raise RefError("unknown tiny-model parameter", _closest(key, TINY_DEFAULTS), key=str(key))
        if not (v is None and key == "intermediate") and (type(v) is not int or v < 1):
            raise RefError(f"expected a whole number >= 1, got {v!r}", f"write e.g. {key}: {TINY_DEFAULTS[key] or 128}",
                           key=key)
    return {"kind": "tiny", **params}


def _closest(key, valid) -> str:
    close = difflib.get_close_matches(str(key), sorted(valid), n=1)
    return f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(valid))}"


def parse_data_ref(value) -> DataRef:
    if isinstance(value, DataRef):
        return value
    if isinstance(value, str) and value:
        return DataRef(path=value)
    if isinstance(value, dict):
        return _parse_dict(DataRef, value)
    raise RefError(f"expected a hub id or path, {{from: STAGE, split: ...}} or {{released: NAME}}, got {value!r}")


# (type(s), test, what the value must be) of each reference key whose type a recipe could get wrong
_KEY_RULES = {
    "path": (str, bool, "a non-empty path or hub id"), "from": (str, bool, "a stage name"),
    "released": (str, bool, "a released dataset name"), "split": (str, bool, "a split name"),
    "limit": (int, lambda v: v >= 0, "a whole number >= 0"), "weight": ((int, float), lambda v: v > 0, "a number > 0"),
    "columns": (dict, lambda v: all(isinstance(x, str) for kv in v.items() for x in kv),
                "a mapping {their_name: our_name}"),
    "keep": (str, lambda v: v in KEEP, f"one of: {', '.join(KEEP)}"),
    "trust_remote_code": (bool, lambda v: True, "true or false"),
    "config_overrides": (dict, lambda v: all(isinstance(k, str) for k in v), "a mapping {config_key: value}"),
}


def _parse_dict(cls, value: dict):
    valid = _ref_keys(cls)
    for key, v in value.items():
        if key not in valid:
            raise RefError("unknown key", _closest(key, valid), key=str(key))
        types, test, what = _KEY_RULES.get(key, (object, lambda v: True, ""))
        if not isinstance(v, types) or (isinstance(v, bool) and types is not bool) or not test(v):
            raise RefError(f"expected {what}, got {v!r}", f"write e.g. {key}: {_EXAMPLES.get(key, '...')}", key=key)
    kwargs = {("stage" if k == "from" else k): v for k, v in value.items()}
    ref = cls(**kwargs)
    released = getattr(ref, "released", None)
    sources = [s for s in (ref.path if not released else None, ref.stage, released) if s]
    if len(sources) != 1:
        raise RefError("a reference needs exactly one of: a path or hub id, from: STAGE" +
                       (", released: NAME (with path: at a local copy)" if cls is DataRef else ""))
    if getattr(ref, "keep", None) and not released:
        raise RefError("keep applies to released datasets only", "delete it, or use {released: NAME, keep: all}",
                       key="keep")
    return ref


_EXAMPLES = {"limit": 1000, "weight": 1.0, "columns": "{solution: gold_answer}", "keep": "all", "split": "train",
             "trust_remote_code": "true", "config_overrides": "{max_position_embeddings: 32768}"}


def ref_to_plain(ref) -> dict:
    return {k: v for k, v in asdict(ref).items() if v not in (None, {}, 1.0, False)}


def stages_referenced(value, _seen: set | None = None) -> list[str]:
    """Every stage named by a {from: X} anywhere inside a (parsed) config value. A container shared through YAML
    aliases is walked once (`_seen`), so nested aliases cannot make the walk exponential."""
    seen = set() if _seen is None else _seen
    if isinstance(value, (dict, list, tuple)) or hasattr(value, "__dataclass_fields__"):
        if id(value) in seen:
            return []
        seen.add(id(value))
    found: list[str] = []
    if isinstance(value, (ModelRef, DataRef)) and value.stage:
        found.append(value.stage)
    elif isinstance(value, dict):
        if isinstance(value.get("from"), str):
            found.append(value["from"])
        for v in value.values():
            found += stages_referenced(v, seen)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += stages_referenced(v, seen)
    elif hasattr(value, "__dataclass_fields__"):
        for f in fields(value):
            found += stages_referenced(getattr(value, f.name), seen)
    return list(dict.fromkeys(found))
