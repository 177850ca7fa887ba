"""YAML recipe -> typed stage configs. Every problem is one line: file, key path, problem, fix.

    name: quickstart
    seed: 0
    run_dir: runs/quickstart          # optional
    stages:                           # ordered; the key is the stage name, kind defaults to the key
      problems: {kind: tasks, task: arithmetic}
      cold_start: {kind: sft, model: {init: tiny}, data: {from: problems, split: train}}
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.run import recipe_yaml
from pipeline.run.compute import DEFAULT_PRICE_PER_CPU_CORE_HOUR, Prices
from pipeline.run.ledger import DEFAULT_PRICE_PER_DEVICE_HOUR
from pipeline.run.recipe_checks import check_trainer_values, first_ref_problem
from pipeline.run.refs import DataRef, ModelRef, RefError, parse_data_ref, parse_model_ref, stages_referenced
from pipeline.run.registry import STAGES

TOP_LEVEL_KEYS = {"name", "seed", "run_dir", "stages", "price_per_device_hour", "price_per_gpu_hour",
                  "price_per_cpu_core_hour", "description", "torch_threads"}
COMMON_STAGE_KEYS = {"kind", "launch"}


class RecipeError(Exception):
    """One line: `file: key.path: problem. Fix: ...`; the CLI prints it and exits with status 2."""

    def __init__(self, file: str, key: str, problem: str, fix: str = ""):
        self.file, self.key, self.problem, self.fix = file, key, problem, fix
        super().__init__(f"{file}: {key}: {problem}" + (f". Fix: {fix}" if fix else ""))


@dataclass
class StageSpec:
    name: str
    kind: str
    config: Any  # the kind's config dataclass instance
    launch: dict | None = None
    depends_on: list[str] = field(default_factory=list)


@dataclass
class Recipe:
    name: str
    seed: int
    run_dir: Path
    stages: list[StageSpec]
    path: str
    raw: dict
    price_per_device_hour: float = DEFAULT_PRICE_PER_DEVICE_HOUR  # USD per GPU-hour (key price_per_gpu_hour)
    torch_threads: int | None = None  # tiny models on a few CPU cores run fastest on one thread
    price_per_cpu_core_hour: float = DEFAULT_PRICE_PER_CPU_CORE_HOUR

    @property
    def prices(self) -> Prices:
        return Prices(gpu_hour=self.price_per_device_hour, cpu_core_hour=self.price_per_cpu_core_hour)

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage '{name}' in recipe {self.path}; stages: {', '.join(s.name for s in self.stages)}")


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    import pipeline.stages  # noqa: F401  (registers every stage kind)

    path = str(path)
    try:
        raw = recipe_yaml.parse(recipe_yaml.read_text(path))
    except recipe_yaml.YamlProblem as e:
        raise RecipeError(path, e.where, e.problem, e.fix) from None
    if not isinstance(raw, dict):
        raise RecipeError(path, "(top level)", "a recipe is a mapping", "start with name:, seed:, stages:")
    raw = apply_overrides(raw, overrides, path)
    return build_recipe(raw, path)


def apply_overrides(raw: dict, overrides, path: str) -> dict:
    """`stages.cold_start.trainer.learning_rate=1e-3 seed=1`: YAML-parsed values set at dotted paths."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(path, item, "an override needs key=value", "write e.g. seed=1")
        key, _, text = item.partition("=")
        try:
            value = recipe_yaml.parse(text) if text else ""
        except recipe_yaml.YamlProblem as e:
            raise RecipeError(path, key, f"the override value {text!r} is not YAML ({e.problem})",
                              f"quote it, e.g. {key}='\"{text}\"'") from None
        node = raw
        parts = key.split(".")
        stages = raw.get("stages")
        if parts[0] == "stages" and len(parts) > 1 and isinstance(stages, dict) and parts[1] not in stages:
            raise RecipeError(path, ".".join(parts[:2]), "no such stage (an override cannot add one)",
                              f"use one of: {', '.join(map(str, stages))}")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part, {}), dict):
                raise RecipeError(path, ".".join(parts[: i + 1]), "is not a mapping, cannot set a key inside it")
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return raw


def build_recipe(raw: dict, path: str) -> Recipe:
    _check_keys(raw, TOP_LEVEL_KEYS, path, "")
    for key in ("name", "stages"):
        if key not in raw:
            raise RecipeError(path, key, "missing required field", f"add {key}: to the recipe")
    name = coerce(raw["name"], str, path, "name")
    seed = coerce(raw.get("seed", 0), int, path, "seed")
    price, cpu_price = _prices(raw, path)
    if not isinstance(raw["stages"], dict) or not raw["stages"]:
        raise RecipeError(path, "stages", "must be a non-empty mapping of stage name -> config",
                          "write stages: {problems: {kind: tasks, ...}}")
    stages: list[StageSpec] = []
    for stage_name, body in raw["stages"].items():
        stages.append(build_stage(str(stage_name), body, [s.name for s in stages], path))
    run_dir = Path(raw.get("run_dir") or f"runs/{name}")
    threads = coerce(raw.get("torch_threads"), int | None, path, "torch_threads")
    if threads is not None and threads < 1:
        raise RecipeError(path, "torch_threads", f"{threads} threads", "give 1 or more, or delete it (torch decides)")
    return Recipe(name, seed, run_dir, stages, path, raw, price, threads, cpu_price)


def _prices(raw: dict, path: str) -> tuple[float, float]:
    """(USD per GPU-hour, USD per CPU core-hour); price_per_device_hour is the older name of the GPU price."""
    if "price_per_gpu_hour" in raw and "price_per_device_hour" in raw:
        raise RecipeError(path, "price_per_device_hour", "is the older name of price_per_gpu_hour; both are set",
                          "keep only price_per_gpu_hour")
    key = "price_per_gpu_hour" if "price_per_gpu_hour" in raw else "price_per_device_hour"
    gpu = coerce(raw.get(key, DEFAULT_PRICE_PER_DEVICE_HOUR), float, path, key)
    cpu = coerce(raw.get("price_per_cpu_core_hour", DEFAULT_PRICE_PER_CPU_CORE_HOUR), float, path,
                 "price_per_cpu_core_hour")
    for name, value in ((key, gpu), ("price_per_cpu_core_hour", cpu)):
        if value < 0:
            raise RecipeError(path, name, f"must be >= 0, got {value}", f"set {name}: a price in USD per hour")
    return gpu, cpu


def build_stage(name: str, body, earlier: list[str], path: str) -> StageSpec:
    where = f"stages.{name}"
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise RecipeError(path, where, "a stage is a mapping of its fields", f"write {name}: {{kind: ...}}")
    kind = body.get("kind", name)
    if kind not in STAGES:
        raise RecipeError(path, f"{where}.kind", f"unknown stage kind '{kind}'",
                          f"use one of: {', '.join(STAGES.names())}")
    cls = STAGES.get(kind).config
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(body, set(fields) | COMMON_STAGE_KEYS, path, where)
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in body.items():
        if key not in COMMON_STAGE_KEYS:
            values[key] = coerce(value, hints[key], path, f"{where}.{key}")
    for key, f in fields.items():
        if key not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(path, f"{where}.{key}", "missing required field", f"add {key}: to stage '{name}'")
    try:
        config = cls(**values)
    except (ValueError, TypeError) as e:
        raise RecipeError(path, where, str(e).rstrip(".")) from None
    _check_trainer(config, path, where)
    depends = stages_referenced(config)
    for dep in depends:
        if dep not in earlier:
            later = "a later stage" if dep != name else "itself"
            raise RecipeError(path, where, f"from: '{dep}' names no earlier stage",
                              f"use one of: {', '.join(earlier) or '(none: this is the first stage)'}"
                              if dep not in (name,) else f"a stage cannot read from {later}")
    problem = first_ref_problem(config, where)  # after the recipe's own structure: files on disk come last
    if problem:
        raise RecipeError(path, *problem)
    launch = coerce(body.get("launch"), dict | None, path, f"{where}.launch")
    if launch:
        from pipeline.run.launch_checks import check_launch

        try:
            check_launch(launch)
        except ValueError as e:
            raise RecipeError(path, f"{where}.launch", str(e)) from None
    return StageSpec(name, kind, config, launch, depends)


def _check_keys(body: dict, valid: set[str], path: str, where: str) -> None:
    for key in body:
        if key not in valid:
            close = difflib.get_close_matches(str(key), sorted(valid), n=1)
            fix = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(valid))}"
            raise RecipeError(path, f"{where}.{key}" if where else str(key), "unknown key", fix)


def _check_trainer(config, path: str, where: str) -> None:
    from pipeline.run.trainer_check import check_trainer_keys

    trainer = getattr(config, "trainer", None)
    target = getattr(type(config), "trainer_config", None)
    if trainer and target:
        problem = check_trainer_keys(trainer, target) or check_trainer_values(trainer, target)
        if problem:
            key, message, fix = problem
            raise RecipeError(path, f"{where}.trainer.{key}", message, fix)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value, tp, path: str, key: str):
    """Check `value` against the annotation `tp` (YAML types), converting refs and int->float; raise RecipeError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(value, option, path, key)
            except RecipeError as e:
                errors.append((option, e))
        shaped = [e for option, e in errors if _same_shape(value, option)]
        if len(shaped) == 1:  # a mapping given where a ref or a list of refs fits: the ref's own problem
            raise shaped[0]
        raise RecipeError(path, key, errors[0][1].problem if len(errors) == 1 else
                          f"expected {' or '.join(_type_name(o) for o in options)}, got {value!r}")
    if tp is Any:
        return value
    if tp in (ModelRef, DataRef):
        try:
            return (parse_model_ref if tp is ModelRef else parse_data_ref)(value)
        except RefError as e:
            raise RecipeError(path, f"{key}.{e.key}" if e.key else key, e.problem, e.fix) from None
        except (ValueError, TypeError) as e:
            raise RecipeError(path, key, str(e)) from None
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise RecipeError(path, key, f"'{value}' is not allowed", f"use one of: {typing.get_args(tp)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(path, key, f"expected a list, got {type(value).__name__}", f"write {key.split('.')[-1]}: [...]")
        (item,) = typing.get_args(tp) or (Any,)
        return [coerce(v, item, path, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise RecipeError(path, key, f"expected a mapping, got {type(value).__name__}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 1e-3 as a string
        except ValueError:
            pass
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _coerce_dataclass(value, tp, path, key)
    if isinstance(tp, type) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise RecipeError(path, key, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _same_shape(value, tp) -> bool:
    """Whether `value` has the YAML shape of `tp`: a mapping for a ref, dict or dataclass; a list for a list."""
    origin = typing.get_origin(tp) or tp
    if isinstance(value, list):
        return origin is list
    if isinstance(value, dict):
        return origin is dict or tp in (ModelRef, DataRef) or dataclasses.is_dataclass(tp)
    return False


def _coerce_dataclass(value, cls, path: str, key: str):
    if not isinstance(value, dict):
        raise RecipeError(path, key, f"expected a mapping for {cls.__name__}")
    _check_keys(value, {f.name for f in dataclasses.fields(cls)}, path, key)
    hints = typing.get_type_hints(cls)
    try:
        return cls(**{k: coerce(v, hints[k], path, f"{key}.{k}") for k, v in value.items()})
    except (ValueError, TypeError) as e:
        raise RecipeError(path, key, str(e)) from None


def config_to_plain(config) -> Any:
    """A stage config as JSON-able plain data (refs become small dicts), for config.json and fingerprints."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {str(k): config_to_plain(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_plain(v) for v in config]
    return config
