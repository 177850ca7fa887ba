"""verify: rejection sampling. Score every sample with the rewards package; keep those whose score passes.

The score is the weighted sum of the rewards (the same functions that score GRPO and grade evaluation). The
default keep rule is "accuracy == 1 and think_format == 1": both rewards are 0/1, weighted 1.0 each, and the
threshold is 2.0, so a sample passes only when both do. Change `rewards` and you must say `threshold` too: no
default could know the range of the rewards you picked (a penalty tops out at 0, not 1).

A sample is unverifiable when any reward returns None for it (no parseable gold answer, say): it has no score, and
it is dropped with reason "unverifiable" unless `keep_unverifiable` (then `score` and `verified` stay None).

Per-problem pass rates (verified samples / judged samples of an `id`, unverifiable ones left out, None when none
was judged) are counted BEFORE the failures are dropped, so a later `select` step can pick problems by difficulty.
They are written to a `pass_rate` column on every row: it travels with the rows to a select later in the same step
list, and survives a save, so a select in a later curate stage works too (a side table would do only the former).
"""

from __future__ import annotations

from pipeline.curation.common import StepOutput, as_rows, group_key

DEFAULT_REWARDS = ({"name": "accuracy", "weight": 1.0}, {"name": "think_format", "weight": 1.0})
DEFAULT_THRESHOLD = 2.0
BATCH_SIZE = 256  # rows per reward call: amortises per-call overhead, bounds the column lists of one call
WRITES = ("score", "verified", "pass_rate")


def build_reward(spec: dict):
    """The rewards package's builder, imported when first needed (and the seam tests replace)."""
    from rewards import build_reward as build

    return build(spec)


def reward_specs(rewards) -> list[dict]:
    """Recipe entries (a name, or {name, weight, **params}) as dicts with a float weight."""
    specs = []
    for i, entry in enumerate(rewards if rewards is not None else DEFAULT_REWARDS):
        spec = {"name": entry} if isinstance(entry, str) else dict(entry)
        if not isinstance(spec.get("name"), str):
            raise TypeError(f"rewards[{i}] needs a name: write {{name: accuracy, weight: 1.0}}")
        spec["weight"] = float(spec.get("weight", 1.0))
        specs.append(spec)
    return specs


def check(params: dict) -> None:
    """Value checks a recipe loader can run before any data is read."""
    rewards = params.get("rewards")
    if rewards is not None:
        if not isinstance(rewards, list) or not rewards:
            raise ValueError("rewards must be a non-empty list like [{name: accuracy, weight: 1.0}]")
        for spec in reward_specs(rewards):  # unknown names and parameters fail at recipe load, not mid-run
            build_reward({k: v for k, v in spec.items() if k != "weight"})
        if params.get("threshold") is None:
            raise ValueError("set threshold when you change rewards (the default 2.0 means accuracy == 1 and "
                             "think_format == 1 with the default rewards)")
    threshold = params.get("threshold")
    if threshold is not None and not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")


def score_rows(rows: list[dict], specs: list[dict]) -> list[float | None]:
    """Weighted reward sum per row; None where any reward could not judge the row."""
    fns = [(build_reward({k: v for k, v in s.items() if k != "weight"}), s["weight"]) for s in specs]
    scores: list[float | None] = []
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start:start + BATCH_SIZE]
        completions = [row.get("response") or "" for row in batch]
        # TRL's calling convention: every dataset column as a keyword argument, the prompts among them.
        columns = {key: [row.get(key) for row in batch] for key in batch[0]}
        columns.setdefault("prompts", [row.get("problem") for row in batch])
        per_reward = [fn(completions, **columns) for fn, _ in fns]
        for i in range(len(batch)):
            values = [values_of_fn[i] for values_of_fn in per_reward]
            if any(v is None for v in values):
                scores.append(None)
            else:
                scores.append(float(sum(w * v for (_, w), v in zip(fns, values))))
    return scores


def pass_rates(rows: list[dict], verified: list[bool | None]) -> dict:
    """{id: verified / judged} over every sample of the id; None when no sample of it could be judged."""
    counts: dict = {}
    for i, (row, ok) in enumerate(zip(rows, verified)):
        passed_judged = counts.setdefault(group_key(row, i), [0, 0])
        if ok is not None:
            passed_judged[0] += bool(ok)
            passed_judged[1] += 1
    return {key: (p / n if n else None) for key, (p, n) in counts.items()}


def verify(rows, *, rewards: list | None = None, threshold: float | None = None, keep_unverifiable: bool = False,
           drop_failed: bool = True) -> StepOutput:
    """Score, mark `score`/`verified`/`pass_rate`, and keep the rows with score >= threshold.

    `drop_failed: false` only annotates (every judged row is kept with verified False/True).
    """
    check({"rewards": rewards, "threshold": threshold})
    rows = as_rows(rows)
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    scores = score_rows(rows, reward_specs(rewards)) if rows else []
    verified = [None if s is None else s >= threshold for s in scores]
    rates = pass_rates(rows, verified)
    kept, dropped = [], {}
    for i, (row, score, ok) in enumerate(zip(rows, scores, verified)):
        row["score"], row["verified"], row["pass_rate"] = score, ok, rates[group_key(row, i)]
        reason = None
        if ok is None and not keep_unverifiable:
            reason = "unverifiable"
        elif ok is False and drop_failed:
            reason = "score below threshold"
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
        else:
            kept.append(row)
    judged = [s for s in scores if s is not None]
    info = {"threshold": threshold, "verified": sum(1 for v in verified if v),
            "mean_score": round(sum(judged) / len(judged), 4) if judged else None}
    return StepOutput(kept, dropped, info)
