"""verifier_corpus: false positives and false negatives of the accuracy reward on a labelled corpus, against the
peer check most GRPO recipes use, and the throughput of each.

Corpus: tests/verifier_corpus.py, ~2,600 completions over 431 MATH-500 and GSM8K gold answers (fixture
tests/fixtures/verifier_corpus.jsonl), half correct in the surface forms models write (boxed, \\dfrac, a/b,
decimals, \\$, units, \\text{}, thousands separators, "The answer is N", answer tags, chat messages), half wrong
answers and hacks (the answer only in the thinking, two answers, hedges, truncations, a longer number holding the
gold, a box in the thinking and another after, empty answers).

Ours: `rewards.build_reward("accuracy")` called as GRPO calls it, in batches of 64 with the gold column. Baseline:
`math_verify.verify(parse(gold), parse(whole_completion))` per completion, in-process, as open-r1's accuracy_reward
calls it: the gold parsed with `LatexExtractionConfig()` (written `$gold$`, as a bare answer), the whole completion
with open-r1's `LatexExtractionConfig(NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
equations=True, boxed="all", units=True), boxed_match_priority=0, try_extract_without_anchor=False)`, both with
`extraction_mode="first_match"`. The two sides take turns batch by batch (taking turns at going first, so both see
the same load from the machine's other jobs), both warmed up first on completions outside the corpus.

A false positive is an incorrect completion scored 1.0; a false negative is a correct one scored anything else
(0.0, or None where the gold did not parse). Headline: completions/s, ours / baseline (target: no false positive,
under 1% false negatives, and at least the baseline's speed: ratio >= 1.0).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common

BATCH = 64
TARGET_RATIO = 1.0
MAX_FN_RATE = 0.01
SIZES = {"full": {"stride": 1, "profile": 640}, "quick": {"stride": 5, "profile": 192},  # strides coprime to 6:
         "smoke": {"stride": 53, "profile": 16}}  # every row position per gold (6 rows) is sampled
BASELINE = ("math_verify.verify(parse(gold), parse(whole_completion)): open-r1's accuracy_reward, first match in the "
            "whole completion (boxed first, anchored LaTeX otherwise), in-process, per completion")
BUCKETS = {
    "math_verify worker (IPC and wait)": ("'poll' of 'select.poll'", "posix.read", "_read_line", "request", "json/"),
    "answer extraction": ("rewards/text.py", "rewards/accuracy.py"),
    "number fast path and cache": ("rewards/verify.py", "fractions.py", "re.Pattern"),
}
WARMUP = [("<think>\nok\n</think>\nThe answer is $\\boxed{\\frac{1}{7}}$.", "\\frac{1}{7}"),
          ("<think>\nok\n</think>\n\\boxed{99991}", "99991"), ("\\boxed{(1, 9)}", "(1,9)"),
          ("<think>\nok\n</think>\nSo $\\boxed{\\sqrt{7}}$ or 3.", "\\sqrt{7}")]


def peer_scores(completions: list, golds: list[str]) -> list[float | None]:
    """The baseline: open-r1's parse + verify per completion (None where the gold does not parse)."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    from rewards.text import completion_text

    # open-r1's config still passes equations=True, which latex2sympy2 now warns about on every parse
    logging.getLogger("latex2sympy2_extended.math_normalization").setLevel(logging.ERROR)
    config = [LatexExtractionConfig(
        normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                 equations=True, boxed="all", units=True),
        boxed_match_priority=0, try_extract_without_anchor=False)]
    scores: list[float | None] = []
    for completion, gold in zip(completions, golds):
        gold_parsed = parse(f"${gold}$", extraction_config=[LatexExtractionConfig()], extraction_mode="first_match")
        if not gold_parsed:
            scores.append(None)
            continue
        answer = parse(completion_text(completion), extraction_config=config, extraction_mode="first_match")
        try:
            scores.append(float(verify(gold_parsed, answer)))
        except Exception:  # noqa: BLE001 - open-r1 scores a failed verify 0
            scores.append(0.0)
    return scores


def interleaved(accuracy, completions: list, golds: list[str]) -> tuple[dict, dict]:
    """Both sides batch by batch, taking turns at going first: ({side: scores}, {side: wall seconds})."""
    scores: dict = {"ours": [], "baseline": []}
    took = {"ours": 0.0, "baseline": 0.0}
    for i, start in enumerate(range(0, len(completions), BATCH)):
        batch, answers = completions[start:start + BATCH], golds[start:start + BATCH]
        for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
            began = time.perf_counter()
            scores[side] += accuracy(batch, gold_answer=answers) if side == "ours" else peer_scores(batch, answers)
            took[side] += time.perf_counter() - began
    return scores, took


def error_rates(rows: list[dict], scores: list) -> dict:
    """False positives (incorrect paid) and false negatives (correct not paid), overall and by completion kind."""
    fp = [row["kind"] for row, s in zip(rows, scores) if not row["correct"] and s == 1.0]
    fn = [row["kind"] for row, s in zip(rows, scores) if row["correct"] and s != 1.0]
    correct = sum(row["correct"] for row in rows)
    return {"false_positives": len(fp), "false_negatives": len(fn), "incorrect": len(rows) - correct,
            "correct": correct, "fp_rate": round(len(fp) / max(1, len(rows) - correct), 4),
            "fn_rate": round(len(fn) / max(1, correct), 4), "fp_by_kind": dict(Counter(fp).most_common()),
            "fn_by_kind": dict(Counter(fn).most_common()), "unjudged": sum(s is None for s in scores)}


def main(argv=None) -> dict:
    import rewards
    from tests.verifier_corpus import build_corpus

    args, size, started = common.start(__doc__, argv, SIZES)
    rows = build_corpus()[::size["stride"]]
    completions, golds = [row["completion"] for row in rows], [row["gold"] for row in rows]
    with common.stdout_to_stderr():
        accuracy = rewards.build_reward("accuracy")
        interleaved(accuracy, [c for c, _ in WARMUP], [g for _, g in WARMUP])  # worker started, imports done
        scores, took = interleaved(accuracy, completions, golds)
        from rewards import verify

        verify._cache.clear()  # the profile pays for its checks again, as a fresh batch would
        _, profile = common.cprofile(accuracy, completions[:size["profile"]], buckets=BUCKETS,
                                     gold_answer=golds[:size["profile"]])
    figures = {side: {**error_rates(rows, scores[side]), "completions_per_s": round(len(rows) / took[side], 1),
                      "seconds": round(took[side], 3)} for side in ("ours", "baseline")}
    figures["completions"], figures["distinct_golds"], figures["batch"] = len(rows), len(set(golds)), BATCH
    ours, base = figures["ours"], figures["baseline"]
    ratio = ours["completions_per_s"] / base["completions_per_s"]
    met = ours["false_positives"] == 0 and ours["fn_rate"] < MAX_FN_RATE and ratio >= TARGET_RATIO
    limits = (f"accuracy: {common.describe_buckets(profile, 3)} (cProfile of {size['profile']} completions): LaTeX "
              f"answers wait on math_verify (sympy) in the worker; numbers, text-equal answers and hacks without an "
              f"answer never reach it")
    return common.finish("verifier_corpus", args, started, figures=figures, ratio=ratio,
                         headline=("accuracy completions/s", ours["completions_per_s"], base["completions_per_s"]),
                         target=f"ratio >= {TARGET_RATIO} (completions/s, ours / baseline), no false positive and "
                                f"false negatives < {MAX_FN_RATE:.0%} (ours)", met=met, baseline=BASELINE,
                         limits=limits, profile=profile)


if __name__ == "__main__":
    main()
