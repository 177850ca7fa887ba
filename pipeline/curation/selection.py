"""select: keep prompts of useful difficulty, a few samples of each, and at most `max_rows` rows.

1. Band: keep the prompts whose pass rate is in [min_pass_rate, max_pass_rate] (inclusive): neither trivial (every
   sample right: nothing to learn) nor hopeless. The pass rate is the `pass_rate` column the verify step writes
   (counted over all samples of the id before verify dropped the failures). Without that column it is counted
   from the `verified` column of the rows at hand, which is only right when failures were kept (verify with
   drop_failed: false, or released correctness flags). The default band [0, 1] needs no pass rate at all.
   Put verify before filter if truncated samples should count as failures: samples filter drops are not judged.
2. Per prompt: `keep: all` keeps every sample, or `per_prompt` of them drawn at random (seeded); `keep: best`
   keeps the `per_prompt` (default 1) with the highest score, shorter first on ties; `keep: shortest` the
   `per_prompt` shortest responses (completion_tokens when known, whitespace tokens otherwise).
3. Cap: `max_rows` draws that many rows at random (seeded), proportionally from each value of `stratify_by` when
   given (largest remainders get the leftover rows). Kept rows stay in their input order.
"""

from __future__ import annotations

import random

from pipeline.curation.common import StepOutput, as_rows, group_key, keep_where, whitespace_tokens

KEEP_MODES = ("all", "best", "shortest")


def check(params: dict) -> None:
    if params.get("keep", "all") not in KEEP_MODES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_MODES)}, got {params.get('keep')!r}")
    low, high = params.get("min_pass_rate", 0.0), params.get("max_pass_rate", 1.0)
    if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in (low, high)) or low > high:
        raise ValueError(f"need 0 <= min_pass_rate <= max_pass_rate <= 1, got [{low!r}, {high!r}]")
    for key in ("per_prompt", "max_rows"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{key} must be a positive integer or null, got {value!r}")
    if params.get("stratify_by") and params.get("max_rows") is None:
        raise ValueError("stratify_by only applies with max_rows: set max_rows or drop stratify_by")


def _pass_rates(rows: list[dict]) -> list[float | None]:
    if not rows:
        return []  # an earlier step dropped everything: nothing to select, not a configuration error
    if "pass_rate" in rows[0]:
        return [row.get("pass_rate") for row in rows]
    if "verified" not in rows[0] or all(row.get("verified") is None for row in rows):
        raise ValueError("select with a pass-rate band needs a verify step before it (or a `verified` column)")
    counts: dict = {}
    for i, row in enumerate(rows):
        if row.get("verified") is not None:
            c = counts.setdefault(group_key(row, i), [0, 0])
            c[0] += bool(row["verified"])
            c[1] += 1
    rates = {key: p / n for key, (p, n) in counts.items()}
    return [rates.get(group_key(row, i)) for i, row in enumerate(rows)]


def _band_reasons(rows: list[dict], low: float, high: float) -> list[str | None]:
    if low <= 0.0 and high >= 1.0:
        return [None] * len(rows)
    reasons: list[str | None] = []
    for rate in _pass_rates(rows):
        if rate is None:
            reasons.append("no pass rate")
        elif rate < low:
            reasons.append("pass rate below band")
        elif rate > high:
            reasons.append("pass rate above band")
        else:
            reasons.append(None)
    return reasons


def _length(row: dict) -> int:
    known = row.get("completion_tokens")
    return int(known) if known is not None else whitespace_tokens(row.get("response"))


def _per_prompt_reasons(rows: list[dict], keep: str, per_prompt: int | None, rng: random.Random) -> list:
    if keep == "all" and per_prompt is None:
        return [None] * len(rows)
    k = per_prompt or 1
    groups: dict = {}
    for i, row in enumerate(rows):
        groups.setdefault(group_key(row, i), []).append(i)
    chosen: set[int] = set()
    for members in groups.values():
        if keep == "all":
            chosen.update(rng.sample(members, min(k, len(members))))
            continue
        if keep == "best":
            def order(i):
                score = rows[i].get("score")
                return (-(score if score is not None else float("-inf")), _length(rows[i]), i)
        else:
            def order(i):
                return (_length(rows[i]), i)
        chosen.update(sorted(members, key=order)[:k])
    return [None if i in chosen else "per-prompt cap" for i in range(len(rows))]


def _cap_reasons(rows: list[dict], max_rows: int | None, stratify_by: str | None, rng: random.Random) -> list:
    if max_rows is None or len(rows) <= max_rows:
        return [None] * len(rows)
    strata: dict = {}
    for i, row in enumerate(rows):
        strata.setdefault(row.get(stratify_by) if stratify_by else None, []).append(i)
    exact = {key: max_rows * len(members) / len(rows) for key, members in strata.items()}
    quota = {key: int(share) for key, share in exact.items()}
    leftover = max_rows - sum(quota.values())
    for key in sorted(exact, key=lambda k: (quota[k] - exact[k], str(k)))[:leftover]:
        quota[key] += 1
    chosen: set[int] = set()
    for key, members in strata.items():
        chosen.update(rng.sample(members, quota[key]))
    return [None if i in chosen else "max_rows cap" for i in range(len(rows))]


def select(rows, *, min_pass_rate: float = 0.0, max_pass_rate: float = 1.0, keep: str = "all",
           per_prompt: int | None = None, max_rows: int | None = None, stratify_by: str | None = None,
           seed: int = 0) -> StepOutput:
    """Band, then per-prompt choice, then the row cap; each stage's drops are counted under its own reason."""
    check({"keep": keep, "min_pass_rate": min_pass_rate, "max_pass_rate": max_pass_rate, "per_prompt": per_prompt,
           "max_rows": max_rows, "stratify_by": stratify_by})
    rng = random.Random(seed)
    rows = as_rows(rows)
    dropped: dict[str, int] = {}
    for decide in (lambda r: _band_reasons(r, min_pass_rate, max_pass_rate),
                   lambda r: _per_prompt_reasons(r, keep, per_prompt, rng),
                   lambda r: _cap_reasons(r, max_rows, stratify_by, rng)):
        rows, counts, _ = keep_where(rows, decide(rows))
        dropped.update(counts)
    prompts = len({group_key(row, i) for i, row in enumerate(rows)})
    return StepOutput(rows, dropped, {"prompts": prompts})
