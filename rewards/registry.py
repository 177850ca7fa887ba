"""Rewards by name: the registry, ``build_reward`` for recipe entries, ``list_rewards`` and ``weighted_sum``.

A reward factory takes the reward's parameters as keyword arguments (each with a default) and returns the reward:
``fn(completions, **columns) -> list[float | None]``. A recipe entry ``{name, weight, **params}`` builds one; the
weight belongs to the caller (GRPO's ``reward_weights``, curate's threshold), so it is dropped here.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
from collections.abc import Callable, Sequence

RewardFn = Callable[..., list]

REGISTRY: dict[str, Callable[..., RewardFn]] = {}


def register(name: str):
    """Decorator: ``@register("think_format")`` puts a reward factory in REGISTRY under ``name``."""

    def decorate(factory):
        if name in REGISTRY:
            raise ValueError(f"Reward '{name}' is registered twice")
        REGISTRY[name] = factory
        return factory

    return decorate


def _closest_first(name: str, names: Sequence[str]) -> list[str]:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return close + sorted(n for n in names if n not in close)


def _check_params(owner: str, fn: Callable, params: dict, ignore: tuple[str, ...] = ()) -> None:
    signature = inspect.signature(fn)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    valid = [n for n in signature.parameters if n not in ignore]
    for key in params:
        if key not in valid:
            choices = ", ".join(_closest_first(key, valid)) or "(none)"
            raise ValueError(f"Unknown parameter '{key}' for reward '{owner}'. Valid parameters: {choices}")


def build_reward(spec: dict | str) -> RewardFn:
    """The reward a recipe entry describes: ``"name"`` or ``{"name": ..., "weight": ..., **params}``.

    ``name`` is a registered reward (see ``list_rewards()``) or a dotted import path ``pkg.mod.fn`` to a user's
    function. A function with a ``completions`` parameter is the reward itself (params are bound with
    ``functools.partial``); any other callable is taken as a factory and called with the params. The result's
    ``__name__`` is ``name`` (TRL logs rewards under it). Unknown names and parameters raise ValueError listing
    the valid ones, closest match first.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ValueError(f"A reward is a name or a dict with a 'name' key, got {spec!r}")
    params = {k: v for k, v in spec.items() if k not in ("name", "weight")}
    name = spec["name"]
    if name in REGISTRY:
        factory = REGISTRY[name]
        _check_params(name, factory, params)
        reward = factory(**params)
        reward.__name__ = name
        return reward
    if "." in name:
        return _import_reward(name, params)
    available = ", ".join(_closest_first(name, list(REGISTRY)))
    raise ValueError(f"Unknown reward '{name}'. Available: {available} (or a dotted path pkg.module.function)")


def _import_reward(path: str, params: dict) -> RewardFn:
    module_name, _, attr = path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"Cannot import reward '{path}': {error}") from error
    if not callable(obj):
        raise ValueError(f"Reward '{path}' is not callable")  # noqa: TRY004 - recipe mistakes are ValueErrors
    try:
        takes_completions = "completions" in inspect.signature(obj).parameters
    except (TypeError, ValueError):
        takes_completions = True
    if takes_completions:
        _check_params(path, obj, params, ignore=("completions",))
        fn = functools.partial(obj, **params) if params else obj
    else:
        _check_params(path, obj, params)
        fn = obj(**params)
        if not callable(fn):
            raise ValueError(f"Reward factory '{path}' returned {type(fn).__name__}, not a callable")

    def reward(completions, **kwargs):
        scores = list(fn(completions, **kwargs))
        if len(scores) != len(completions):
            raise ValueError(f"Reward '{path}' returned {len(scores)} scores for {len(completions)} completions")
        return [None if s is None or (isinstance(s, float) and math.isnan(s)) else float(s) for s in scores]

    reward.__name__ = path
    reward.__qualname__ = path
    return reward


def list_rewards() -> list[tuple[str, str, dict]]:
    """(name, one-line help, {param: default}) of every registered reward, sorted by name."""
    rows = []
    for name in sorted(REGISTRY):
        factory = REGISTRY[name]
        doc = inspect.getdoc(factory) or ""
        params = {
            p.name: None if p.default is inspect.Parameter.empty else p.default
            for p in inspect.signature(factory).parameters.values()
        }
        rows.append((name, doc.splitlines()[0] if doc else "", params))
    return rows


def weighted_sum(reward_fns: Sequence[RewardFn], weights: Sequence[float], completions, **columns) -> list:
    """Per completion, the sum of ``weight * score`` over the rewards that judged it (score not None).

    None where no reward judged the completion. This is the sum, not a renormalised mean: a reward that cannot judge
    contributes nothing, as in TRL's nansum over reward functions.
    """
    if len(reward_fns) != len(weights):
        raise ValueError(f"weighted_sum: {len(reward_fns)} rewards but {len(weights)} weights")
    totals: list[float | None] = [None] * len(completions)
    for fn, weight in zip(reward_fns, weights):
        scores = fn(completions, **columns)
        if len(scores) != len(completions):
            name = getattr(fn, "__name__", repr(fn))
            raise ValueError(f"Reward '{name}' returned {len(scores)} scores for {len(completions)} completions")
        for i, score in enumerate(scores):
            if score is None or (isinstance(score, float) and math.isnan(score)):
                continue
            totals[i] = (totals[i] or 0.0) + weight * float(score)
    return totals
