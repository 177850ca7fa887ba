"""curate_scale: verify, dedup and 8-gram decontamination of 220k synthetic traces (the size of OpenR1-Math-220k)
against MATH-500, AIME24, AMC23 and GSM8K test; rows/s and peak memory per step.

Data: benchmarks/curate_data.py (perturbed GSM8K train questions and MATH-style LaTeX problems, 2.35 generations
per problem with R1-style thinking of realistic length, planted benchmark problems). Every step runs on the whole
row set with the curate stage's step functions (pipeline.curation): verify with its default rewards (accuracy by
math_verify + think_format), dedup on problem (exact + MinHash near-duplicates), decontaminate (8-grams).

Baselines (benchmarks/openr1_decontaminate.py): open-r1's decontamination as its scripts/decontaminate.py runs it
(lowercase, split on whitespace, the word 8-grams of every benchmark problem in a dict, a row flagged when any of
its 8-grams is a key; no rule for short problems), timed two ways: `openr1_map`, the script's own way (one
`Dataset.map(num_proc=8)` per benchmark over the rows as a Dataset, built outside the timing as the script's
load_dataset gives it) and `openr1_loop` (the same function in a plain loop). Both timings include building the
8-gram lookups, as ours includes building its index. Which rows each flags: `rows_flagged_by_both`, `only_ours`,
`only_baseline` (target 0: we catch all it catches). Headline ratio: against the faster of the two timings.
A correctness check, not a baseline: `decontaminate_reference` (our normalisation, plainly) must flag exactly the
rows the fast path flags. How many planted rows each flags is reported, with the text of any we miss. Peak memory:
resident set sampled during each step, above what the process held before it (the rows themselves), and the
process's ru_maxrss at the end.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common, curate_data

TARGET = 5.0
BENCHMARKS = ("math500", "aime24", "amc23", "gsm8k")
SIZES = {
    "full": {"rows": 220_000, "planted": 100, "profile_rows": 20_000, "repeats": 2, "num_proc": 8},
    "quick": {"rows": 20_000, "planted": 25, "profile_rows": 4_000, "repeats": 2, "num_proc": 8},
    # smoke: 2 processes, not the script's 8 (8 pools of 8 processes start in over a minute on 2 cores)
    "smoke": {"rows": 1_500, "planted": 5, "profile_rows": 400, "repeats": 1, "num_proc": 2},
}
BUCKETS = {
    "math_verify worker (IPC and wait)": ("'poll' of 'select.poll'", "posix.read", "posix.write", "_read_line",
                                          "request", "json/"),
    "answer extraction": ("rewards/text.py", "rewards/accuracy.py"),
    "format check": ("rewards/format.py",),
    "plain-number fast path and cache": ("rewards/verify.py", "fractions.py"),
    "numpy (hashing, minhash, search)": ("numpy", "<method 'reduce", "reduceat", "searchsorted", "fromiter"),
    "tokenizing words": ("translate", "'split'", "'encode'", "'decode'", "'join'", "common.py", "'lower'", "re.",
                         "'sub'"),
    "n-gram sets and lookups": ("decontaminate.py", "'get' of 'dict'", "setdefault", "'union'", "zlib.crc32",
                                "__missing__"),
}


_OPENR1 = ("open-r1 scripts/decontaminate.py's algorithm (benchmarks/openr1_decontaminate.py): lowercase, split on "
           "whitespace, dict of every word 8-gram of the benchmark problems, a row flagged when any of its 8-grams "
           "is in it, no short-problem rule; lookups built inside the timing")
BASELINES = {"openr1_map": _OPENR1 + "; run as the script runs it: one datasets.Dataset.map(num_proc=8, the script's; 2 at --smoke) per "
                                      "benchmark",
             "openr1_loop": _OPENR1 + "; a plain Python loop in one process (best of the repeats)"}


def load_problems() -> dict[str, list[str]]:
    from pipeline.curation.decontaminate import load_benchmark_problems

    return load_benchmark_problems(list(BENCHMARKS))


def timed(fn, rows, **params) -> tuple[object, dict]:
    """(step output, {seconds, rows_per_s, peak_mb_above_start})."""
    with common.PeakRSS() as memory:
        start = time.perf_counter()
        out = fn(rows, **params)
        seconds = time.perf_counter() - start
    return out, {"rows": len(rows), "seconds": round(seconds, 3), "rows_per_s": round(len(rows) / seconds, 1),
                 "rows_out": len(out.rows), "dropped": out.dropped, "peak_mb_above_start": round(memory.delta_mb, 1)}


def planted_recall(rows: list[dict], kept: set[int], planted: dict[str, str], ngram: int = 8) -> dict:
    """How many planted rows were flagged, and the ones that were not: their text, and whether the benchmark
    problem they hold is shorter than `ngram` words (then it is one short n-gram, which a prefix or a suffix on the
    row breaks)."""
    from pipeline.curation.common import words

    missed = [{"row": r["problem"][:100], "benchmark_words": len(words(planted[r["id"]]))}
              for r in rows if r["id"] in planted and id(r) in kept]
    return {"planted": len(planted), "planted_flagged": len(planted) - len(missed), "planted_missed": missed,
            "planted_missed_long": sum(m["benchmark_words"] >= ngram for m in missed)}


def openr1(rows: list[dict], problems: dict, repeats: int, num_proc: int) -> dict:
    """open-r1's decontamination timed both ways, the loop best of `repeats`, the map (slower, and steadier: its
    cost is mostly starting processes) once; the rows each flags (ids of row dicts)."""
    import datasets

    from benchmarks import openr1_decontaminate as o

    datasets.disable_progress_bars()
    texts = [row["problem"] for row in rows]
    dataset = datasets.Dataset.from_dict({"problem": texts})
    out = {}
    for way in ("loop", "map"):
        seconds = []
        for _ in range(repeats if way == "loop" else 1):
            start = time.perf_counter()
            lookups = o.build_lookups(problems)
            flags = (o.flag_with_loop(texts, lookups) if way == "loop" else
                     o.flag_with_map(dataset, lookups, num_proc=num_proc))
            seconds.append(time.perf_counter() - start)
        best = min(seconds)
        out[way] = {"rows": len(rows), "seconds": round(best, 3), "rows_per_s": round(len(rows) / best, 1),
                    "runs": [round(x, 3) for x in seconds], "flagged": sum(map(bool, flags))}
        out[way]["flagged_ids"] = {id(row) for row, f in zip(rows, flags) if f}
    out["map"]["num_proc"] = num_proc
    assert out["loop"]["flagged_ids"] == out["map"]["flagged_ids"], "the two timings ran different algorithms"
    return out


def agreement(rows: list[dict], ours: set[int], baseline: set[int], planted: dict[str, str]) -> dict:
    """Rows flagged by both, by ours only, by the baseline only (with up to 5 examples of each side's own)."""
    def examples(ids: set[int]) -> list[str]:
        return [r["problem"][:160] for r in rows if id(r) in ids][:5]

    planted_ids = {id(r) for r in rows if r["id"] in planted}
    return {"rows_flagged_by_both": len(ours & baseline), "only_ours": len(ours - baseline),
            "only_baseline": len(baseline - ours), "only_ours_examples": examples(ours - baseline),
            "only_baseline_examples": examples(baseline - ours),
            "planted_flagged_by_baseline": len(baseline & planted_ids)}


def decontamination(rows: list[dict], problems: dict, planted: dict[str, str], repeats: int) -> dict:
    """Fast and reference, alternating `repeats` times; the best time of each, and whether they agree."""
    from pipeline.curation.decontaminate import decontaminate, decontaminate_reference

    fast_runs, ref_runs = [], []
    for _ in range(repeats):
        fast, fast_figures = timed(decontaminate, rows, benchmarks=problems)
        ref, ref_figures = timed(decontaminate_reference, rows, benchmarks=problems)
        fast_runs.append(fast_figures)
        ref_runs.append(ref_figures)
    kept_fast, kept_ref = {id(r) for r in fast.rows}, {id(r) for r in ref.rows}
    best_fast = min(fast_runs, key=lambda f: f["seconds"])
    best_ref = min(ref_runs, key=lambda f: f["seconds"])
    return {"fast": {**best_fast, "flagged": fast.info["flagged"]},
            "reference": {**best_ref, "flagged": ref.info["flagged"]},
            "runs": {"fast": [f["seconds"] for f in fast_runs], "reference": [f["seconds"] for f in ref_runs]},
            "same_rows_flagged": kept_fast == kept_ref and fast.info["flagged"] == ref.info["flagged"],
            "rows_flagged": len(rows) - len(fast.rows), **planted_recall(rows, kept_fast, planted),
            "flagged_ids": {id(r) for r in rows} - kept_fast}


def profile_steps(rows: list[dict], problems: dict, subset: int) -> dict:
    """cProfile of each step: the fast decontamination on every row (it makes few Python calls, so the profiler
    barely slows it, and at full scale its fixed cost, the benchmark index, no longer dominates), the others on the
    first `subset` rows (a profiler slows their Python code several-fold; these are not the timed runs)."""
    from pipeline.curation.decontaminate import decontaminate, decontaminate_reference
    from pipeline.curation.dedup import dedup
    from pipeline.curation.verify import verify
    from rewards import verify as answer_check

    # The verifier caches (gold, answer) verdicts for the process: clear it, or verify's profile would show the
    # timed run's cache hits instead of the work.
    answer_check._cache.clear()
    out = {"rows": subset, "decontaminate_rows": len(rows)}
    for name, fn, params in (("verify", verify, {}), ("dedup", dedup, {"on": "problem"}),
                             ("decontaminate", decontaminate, {"benchmarks": problems}),
                             ("decontaminate_reference", decontaminate_reference, {"benchmarks": problems})):
        data = rows if name == "decontaminate" else [dict(r) for r in rows[:subset]]
        _, out[name] = common.cprofile(fn, data, buckets=BUCKETS, top=6, **params)
    return out


def explain(figures: dict, profile: dict) -> str:
    steps = figures["steps"]
    slowest = min(("verify", "dedup", "decontaminate"), key=lambda s: steps[s]["rows_per_s"])
    return (f"the slowest step is {slowest} ({steps[slowest]['rows_per_s']:.0f} rows/s): "
            f"{common.describe_buckets(profile[slowest], 3)} (cProfile, {profile['rows']} rows); decontaminate: "
            f"{common.describe_buckets(profile['decontaminate'], 3)} (all {profile['decontaminate_rows']} rows); "
            f"the reference: {common.describe_buckets(profile['decontaminate_reference'], 2)}")


def main(argv=None) -> dict:
    from pipeline.curation.dedup import dedup
    from pipeline.curation.verify import verify

    args, size, started = common.start(__doc__, argv, SIZES)
    with common.stdout_to_stderr():
        problems = load_problems()
        build = time.perf_counter()
        with common.PeakRSS() as data_memory:
            rows, facts, planted = curate_data.synthesize(size["rows"], problems, size["planted"])
        facts.update(build_s=round(time.perf_counter() - build, 1), rows_mb=round(data_memory.delta_mb, 1))
        repeats = args.repeats or size["repeats"]
        steps = {"decontaminate_vs_reference": decontamination(rows, problems, planted, repeats)}
        baseline = openr1(rows, problems, repeats, size["num_proc"])
        steps["decontaminate"], steps["decontaminate_reference"] = (steps["decontaminate_vs_reference"]["fast"],
                                                                   steps["decontaminate_vs_reference"]["reference"])
        _, steps["dedup"] = timed(dedup, rows, on="problem")
        _, steps["verify"] = timed(verify, rows)
        profile = profile_steps(rows, problems, size["profile_rows"])
    compare = steps.pop("decontaminate_vs_reference")
    ours_ids = compare.pop("flagged_ids")
    agree = agreement(rows, ours_ids, baseline["loop"].pop("flagged_ids"), planted)
    baseline["map"].pop("flagged_ids")
    ours_s = steps["decontaminate"]["seconds"]
    ratios = {f"ratio_vs_openr1_{way}": baseline[way]["seconds"] / ours_s for way in ("map", "loop")}
    strongest = min(("map", "loop"), key=lambda way: baseline[way]["seconds"])
    figures = {"steps": steps, "decontamination": {k: v for k, v in compare.items() if k not in ("fast", "reference")},
               "openr1": baseline, "agreement": agree, **{k: round(v, 3) for k, v in ratios.items()},
               "data": facts, "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "benchmarks": {name: len(texts) for name, texts in problems.items()}}
    ratio = ratios[f"ratio_vs_openr1_{strongest}"]
    met = ratio >= TARGET and agree["only_baseline"] == 0 and compare["same_rows_flagged"]
    return common.finish("curate_scale", args, started, figures=figures, ratio=ratio,
                         headline=("decontamination rows/s", steps["decontaminate"]["rows_per_s"],
                                   baseline[strongest]["rows_per_s"]),
                         target=f"ratio >= {TARGET} (decontamination, open-r1's faster timing s / ours s), "
                                "only_baseline == 0 and the reference flags the same rows", met=met,
                         baseline=BASELINES[f"openr1_{strongest}"], ratios=ratios, baselines=BASELINES,
                         limits=explain(figures, profile), profile=profile)


if __name__ == "__main__":
    main()
