"""References from one stage's config to a model or a dataset: a hub id, a local path, or another stage's output.

In YAML a model field is a string (hub id or path), `{from: STAGE}`, or `{init: tiny, layers: 2, ...}`; a data field
is a string, `{from: STAGE, split: train}`, `{released: openr1-math-220k}`, or `{path: x.jsonl, split: test}`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class ModelRef:
    path: str | None = None  # hub id or local folder
    stage: str | None = None  # {from: STAGE}: the model that stage saved
    init: dict | None = None  # {init: tiny, ...}: a fresh random-init model, built offline
    trust_remote_code: bool = False

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
            params = {k: v for k, v in value.items() if k != "init"}
            if value["init"] != "tiny":
                raise ValueError(f"unknown init '{value['init']}'; use {{init: tiny, layers: 2, hidden: 64}}")
            return ModelRef(init={"kind": "tiny", **params})
        return _parse_dict(ModelRef, value)
    raise ValueError("expected a hub id or path, {from: STAGE} or {init: tiny, ...}")


def parse_data_ref(value) -> DataRef:
    if isinstance(value, DataRef):
        return value
    if isinstance(value, str) and value:
        return DataRef(path=value)
    if isinstance(value, dict):
        return _parse_dict(DataRef, value)
    raise ValueError("expected a hub id or path, {from: STAGE, split: ...} or {released: NAME}")


def _parse_dict(cls, value: dict):
    unknown = set(value) - _ref_keys(cls)
    if unknown:
        raise ValueError(f"unknown key '{min(unknown)}' in a reference; valid: {', '.join(sorted(_ref_keys(cls)))}")
    kwargs = {("stage" if k == "from" else k): v for k, v in value.items()}
    ref = cls(**kwargs)
    sources = [s for s in (ref.path, ref.stage, getattr(ref, "released", None)) if s]
    if len(sources) != 1:
        raise ValueError("a reference needs exactly one of: a path or hub id, from: STAGE" +
                         (", released: NAME" if cls is DataRef else ""))
    return ref


def ref_to_plain(ref) -> dict:
    return {k: v for k, v in asdict(ref).items() if v not in (None, {}, 1.0, False)}


def stages_referenced(value) -> list[str]:
    """Every stage named by a {from: X} anywhere inside a (parsed) config value."""
    found: list[str] = []
    if isinstance(value, (ModelRef, DataRef)) and value.stage:
        found.append(value.stage)
    elif isinstance(value, dict):
        if isinstance(value.get("from"), str):
            found.append(value["from"])
        for v in value.values():
            found += stages_referenced(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += stages_referenced(v)
    elif hasattr(value, "__dataclass_fields__"):
        for f in fields(value):
            found += stages_referenced(getattr(value, f.name))
    return list(dict.fromkeys(found))
