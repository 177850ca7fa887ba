"""The numbers of an evaluation, computed from per-sample records.

A record is one sample of one problem (see ``pipeline.evaluation.sampling.grade``); the keys read here are
``problem_id``, ``sample_index``, ``correct`` (True/False, or None when the gold answer could not be judged),
``extracted_answer``, ``format_ok``, ``finish_reason``, ``completion_tokens``, ``thinking_tokens`` and ``level``.

- pass@1 is the mean over problems of the fraction of correct samples, with its standard error over problems
  (sample standard deviation of the per-problem rates / sqrt(problems)), as R1 reports it.
- pass@k is Chen et al. (2021)'s unbiased estimator 1 - C(n-c, k) / C(n, k), computed as a product so that it
  stays exact for large n.
- maj@k is a majority vote over the first k samples' extracted answers: answers are grouped by a normalised key
  (plain numbers by exact value), groups whose answers math_verify finds equivalent are merged, the biggest group
  wins and a tie goes to the group whose first sample came first. The vote is correct when that group's first
  sample was graded correct. Samples with no extracted answer do not vote; no vote at all is incorrect.

Problems whose samples are all ungradable (correct is None) are left out of every accuracy number and counted
under ``unjudged``.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence

_SPACING_RE = re.compile(r"\\[,!;: ]|\\(?:left|right)|\s+|\$")
_TEXT_WRAP_RE = re.compile(r"^\\(?:text|textbf|mathrm)\{(.*)\}$")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct samples out of ``n``: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        raise ValueError(f"pass@{k} needs n >= {k} samples, got n={n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i): no huge binomials, no cancellation.
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def check_ks(ks: Sequence[int], n: int) -> None:
    """ValueError naming the fix when some k asks for more samples than n."""
    for k in ks:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k: every k must be a positive integer, got {k!r}")
        if k > n:
            raise ValueError(f"k: pass@{k} needs n >= {k} samples, got n={n}; raise n or drop {k} from k")


def mean_and_stderr(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, standard error of the mean); stderr is None with fewer than two values, both None with none."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def answer_key(answer: str | None) -> str | None:
    """A normalised form of an extracted answer for voting: plain numbers by exact value ("27.0" = "27" = "27.00"),
    anything else with spacing, ``$``, ``\\left``/``\\right`` and one ``\\text{}`` wrapper removed."""
    if answer is None:
        return None
    from rewards.verify import plain_number

    number = plain_number(answer)
    if number is not None:
        return f"num:{number[0]}"
    text = _SPACING_RE.sub("", answer)
    wrapped = _TEXT_WRAP_RE.match(text)
    text = wrapped.group(1) if wrapped else text
    return f"str:{text}" if text else None


def _math_equivalent(a: str, b: str) -> bool:
    from rewards.verify import answers_equivalent

    return bool(answers_equivalent(a, b))


def majority_vote(answers: Sequence[str | None], equivalent: Callable[[str, str], bool] | None = _math_equivalent
                  ) -> int | None:
    """The index of the sample that represents the winning answer (the first sample of the biggest group; ties go
    to the group seen first), or None when no sample has an answer. ``equivalent`` merges groups whose first
    answers it finds equal (math_verify by default; numbers are already grouped by value and skip it)."""
    groups: list[list[int]] = []  # sample indices, in order of first appearance
    keys: list[str] = []
    for i, answer in enumerate(answers):
        key = answer_key(answer)
        if key is None:
            continue
        for g, other in enumerate(keys):
            same = other == key or (equivalent is not None and not (key.startswith("num:") and
                                    other.startswith("num:")) and equivalent(answers[groups[g][0]], answer))
            if same:
                groups[g].append(i)
                break
        else:
            keys.append(key)
            groups.append([i])
    if not groups:
        return None
    best = max(range(len(groups)), key=lambda g: (len(groups[g]), -groups[g][0]))
    return groups[best][0]


def group_by_problem(records: Sequence[dict]) -> dict[str, list[dict]]:
    """problem_id -> its records sorted by sample_index, problems in order of first appearance."""
    problems: dict[str, list[dict]] = {}
    for record in records:
        problems.setdefault(str(record["problem_id"]), []).append(record)
    return {pid: sorted(rs, key=lambda r: r["sample_index"]) for pid, rs in problems.items()}


def _rate(values: Sequence) -> float | None:
    present = [v for v in values if v is not None]
    return sum(1.0 for v in present if v) / len(present) if present else None


def _length_stats(values: Sequence, prefix: str) -> dict:
    present = [v for v in values if v is not None]
    return {f"{prefix}_mean": sum(present) / len(present) if present else None,
            f"{prefix}_median": statistics.median(present) if present else None}


def summarize(records: Sequence[dict], ks: Sequence[int] = (1,),
              equivalent: Callable[[str, str], bool] | None = _math_equivalent) -> dict:
    """The metrics of one (model, benchmark) pair. See the module docstring for each definition."""
    problems = group_by_problem(records)
    judged = {pid: rs for pid, rs in problems.items() if any(r["correct"] is not None for r in rs)}
    n = min((len(rs) for rs in problems.values()), default=0)
    if records:
        check_ks(ks, n)
    rates = [sum(bool(r["correct"]) for r in rs) / len(rs) for rs in judged.values()]
    mean, stderr = mean_and_stderr(rates)
    out: dict = {"pass@1": mean, "pass@1_stderr": stderr, "problems": len(problems), "unjudged":
                 len(problems) - len(judged), "samples_per_problem": n, "samples": len(records)}
    for k in ks:
        if k > 1:
            values = [pass_at_k(len(rs), sum(bool(r["correct"]) for r in rs), k) for rs in judged.values()]
            out[f"pass@{k}"] = sum(values) / len(values) if values else None
        votes = [_majority_correct(rs[:k], equivalent) for rs in judged.values()]
        out[f"maj@{k}"] = sum(votes) / len(votes) if votes else None
    out["format_rate"] = _rate([r.get("format_ok") for r in records])
    out["truncation_rate"] = _rate([r.get("finish_reason") == "length" for r in records]) if records else None
    out.update(_length_stats([r.get("completion_tokens") for r in records], "response_tokens"))
    out.update(_length_stats([r.get("thinking_tokens") for r in records], "thinking_tokens"))
    by_level = accuracy_by_level(judged)
    if by_level:
        out["accuracy_by_level"] = by_level
    return out


def _majority_correct(samples: Sequence[dict], equivalent) -> float:
    winner = majority_vote([s.get("extracted_answer") for s in samples], equivalent)
    return 1.0 if winner is not None and samples[winner]["correct"] else 0.0


def accuracy_by_level(judged: dict[str, list[dict]]) -> dict[str, dict]:
    """{level: {pass@1, problems}} over problems that carry a level (MATH-500's 1-5), levels in sorted order."""
    levels: dict[str, list[float]] = {}
    for rs in judged.values():
        level = rs[0].get("level")
        if level is not None and level != "":
            levels.setdefault(str(level), []).append(sum(bool(r["correct"]) for r in rs) / len(rs))
    ordered = sorted(levels, key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s))
    return {level: {"pass@1": sum(levels[level]) / len(levels[level]), "problems": len(levels[level])}
            for level in ordered}
