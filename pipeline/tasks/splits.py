"""Disjoint, size-independent splits of a procedural task.

Every problem text has exactly one owner split, decided by a hash of (seed, split name, text) alone: weighted
rendezvous hashing, each split scoring ``weight / -ln(u)`` with ``u`` its own uniform hash of the text, the highest
score owning the text. Each split draws candidates from its own random stream (seeded by task, seed and split
name) and keeps, in order, the distinct texts it owns. So:

- splits are disjoint (one owner per text), and deterministic;
- a split's rows depend on its own size, the seed, the params and the split names with their weights, never on
  the sizes of the other splits: growing ``train`` leaves ``test`` as it was, and a larger split starts with the
  rows of the smaller one;
- adding a new split name only moves texts into the new split, never between the existing ones (rendezvous);
- the owner does not depend on the task or its params, so ``47*86=?`` owned by ``test`` under one seed stays out of
  ``train`` whichever task or difficulty drew it.

The weights are fixed per split name, not derived from the sizes (that would make one split's content depend on
another's size): ``train`` weighs 9, any other split 1, so with train and test ``train`` owns ~90% of the problem
space. A split that asks for more problems than its share of the space holds gets a clear error.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import random

from pipeline.tasks.common import Task, problem_id

DEFAULT_WEIGHTS = {"train": 9.0}
OTHER_WEIGHT = 1.0
# Consecutive rejected draws (owned by another split or already drawn) before a split is declared exhausted, in
# multiples of the problem space: after 20 * space draws a still-unfound problem is missed with odds ~e^-20.
STALL_FACTOR = 20
MAX_STALL = 5_000_000


def split_weights(names, shares: dict | None = None) -> dict[str, float]:
    """The rendezvous weight of each split: `shares` where given, else train 9 and every other split 1."""
    shares = shares or {}
    unknown = sorted(set(shares) - set(names))
    if unknown:
        raise ValueError(f"shares names splits {unknown} that are not in sizes {sorted(names)}")
    weights = {name: float(shares.get(name, DEFAULT_WEIGHTS.get(name, OTHER_WEIGHT))) for name in names}
    bad = {name: w for name, w in weights.items() if not w > 0}
    if bad:
        raise ValueError(f"split shares must be positive numbers, got {bad}")
    return weights


def owner(text: str, seed: int, weights: dict[str, float]) -> str:
    """The split that owns a problem text (weighted rendezvous hashing)."""
    best, best_score = "", -1.0
    for name in sorted(weights):
        digest = hashlib.blake2b(f"{seed}\x1f{name}\x1f{text}".encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2**64  # uniform in (0, 1), never 0 or 1
        score = weights[name] / -math.log(u)
        if score > best_score:
            best, best_score = name, score
    return best


def check_capacity(task: Task, params: dict, sizes: dict[str, int], weights: dict[str, float]) -> int:
    """Refuse, before drawing anything, a split larger than its expected share of the problem space."""
    space = task.space_size(params)
    total = sum(weights.values())
    for name, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"split size for '{name}' must be a non-negative integer, got {size!r}")
        capacity = int(space * weights[name] / total)
        if size > capacity:
            raise ValueError(
                f"split '{name}' asks for {size} problems, but task '{task.name}' with {_describe(params)} has "
                f"{space} distinct problems and '{name}' owns about {weights[name] / total:.0%} of them "
                f"(~{capacity}). Ask for fewer, make the problems larger (more digits/operands/numbers), or give "
                f"'{name}' a larger weight with shares={{'{name}': ...}}.")
    return space


def draw_split(task: Task, params: dict, name: str, size: int, seed: int, weights: dict[str, float],
               space: int) -> list[dict]:
    """The first `size` distinct problems owned by split `name` in its own random stream."""
    rng = random.Random(f"{task.name}:{seed}:{name}")
    rows, seen = [], set()
    stall, stall_limit = 0, min(MAX_STALL, max(10_000, STALL_FACTOR * space))
    while len(rows) < size:
        item = task.make(rng, params)
        text = item["problem"]
        if text in seen or owner(text, seed, weights) != name:
            stall += 1
            if stall > stall_limit:
                raise ValueError(
                    f"split '{name}' of task '{task.name}' ran out of problems after {len(rows)} of {size}: "
                    f"{_describe(params)} leaves it too few. Ask for fewer or make the problems larger.")
            continue
        seen.add(text)
        stall = 0
        rows.append({"id": problem_id(task.name, text), "problem": text, "gold_answer": item["gold_answer"],
                     "solution": item["solution"], "task": task.name,
                     **{k: v for k, v in item.items() if k not in ("problem", "gold_answer", "solution")}})
    return rows


def _describe(params: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def resolve_params(task: Task, params: dict) -> dict:
    """Defaults filled in, unknown names refused with the closest valid one, values checked by the task."""
    for key in params:
        if key not in task.params:
            close = difflib.get_close_matches(key, list(task.params), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"Unknown parameter '{key}' for task '{task.name}'.{hint} "
                             f"Parameters: {', '.join(sorted(task.params))}")
    return task.validate({**task.params, **params})
