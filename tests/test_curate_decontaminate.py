"""Decontamination against the real benchmark files (shipped in the package): planted problems are flagged, and the
fast path flags exactly the rows open-r1's plain algorithm (decontaminate_reference) flags."""

import json
import random

import pytest

from pipeline.curation.decontaminate import decontaminate, decontaminate_reference, load_benchmark_problems
from pipeline.data.benchmarks import FILES_DIR as BENCH_DIR
from pipeline.data.schema import trace_row


def _jsonl(path, n=None):
    with open(path) as f:
        return [json.loads(line) for _, line in zip(range(n or 10**9), f)]


def _row(problem, id):
    return trace_row(problem, "Think it through.", "\\boxed{1}", id=id, source="test", gold_answer="1")


@pytest.fixture(scope="module")
def benchmarks():
    """All four named benchmarks, loaded once (a dict of problems skips reloading them per call)."""
    return load_benchmark_problems(["math500", "aime24", "amc23", "gsm8k"])


def test_planted_math500_problem_is_flagged_and_dropped():
    planted = _jsonl(BENCH_DIR / "math500.jsonl", 40)[37]["problem"]
    rows = [_row("A train leaves at noon and travels sixty miles per hour toward a town two hundred miles away.",
                 "clean")]
    rows.append(_row(f"Here is a problem from my homework. {planted} Please explain each step.", "planted"))
    out = decontaminate(rows, benchmarks=[str(BENCH_DIR / "math500.jsonl")])
    assert out.dropped == {"contaminated": 1}
    assert out.info["flagged"] == {"math500": 1}
    assert [r["id"] for r in out.rows] == ["clean"]


def test_short_benchmark_problem_copied_whole_is_flagged(benchmarks):
    short = min(benchmarks["math500"], key=lambda p: len(p.split()))
    assert len(short.split()) < 8  # the case the whole-text rule exists for
    out = decontaminate([_row(short.upper(), "copy"), _row(short + " And then double it.", "longer")],
                        benchmarks={"math500": benchmarks["math500"]})
    assert out.info["flagged"] == {"math500": 1} and [r["id"] for r in out.rows] == ["longer"]


def test_punctuation_and_case_do_not_hide_a_copy(benchmarks):
    problem = benchmarks["aime24"][3]
    disguised = problem.upper().replace(",", " ,").replace("$", " $ ").replace(".", " ...")
    out = decontaminate([_row(disguised, "x")], benchmarks={"aime24": benchmarks["aime24"]}, drop=False)
    assert out.rows[0]["contaminated"] == ["aime24"] and out.dropped == {}


def test_ngram_size_is_configurable(benchmarks):
    words = benchmarks["math500"][0].split()
    fragment = "Totally unrelated words here " + " ".join(words[:6]) + " and more unrelated words follow"
    for n, flagged in ((8, 0), (5, 1)):
        out = decontaminate([_row(fragment, "f")], benchmarks={"math500": benchmarks["math500"]}, ngram=n)
        assert out.info["flagged"]["math500"] == flagged


def test_fast_path_flags_the_same_rows_as_the_reference(benchmarks):
    rng = random.Random(0)
    pool = [p for problems in benchmarks.values() for p in problems]
    # worked solutions: math text that restates parts of its problem, so some rows share n-grams with a benchmark
    rows = [_row(q["solution"], f"train{i}") for i, q in enumerate(_jsonl(BENCH_DIR / "math500.jsonl", 250))]
    for i in range(60):  # benchmark problems embedded, truncated, or with a word changed in the middle
        problem = rng.choice(pool)
        words = problem.split()
        variant = [f"Solve: {problem}", " ".join(words[: max(1, len(words) // 3)]),
                   " ".join(words[:len(words) // 2] + ["banana"] + words[len(words) // 2 + 1:])][i % 3]
        rows.append(_row(variant, f"bench{i}"))
    rows.append(_row("", "empty"))
    rows.append(_row("Ünïcode — problème: trouver x tel que x² = 4, où x > 0.", "unicode"))
    fast = decontaminate([dict(r) for r in rows], benchmarks=benchmarks, drop=False)
    reference = decontaminate_reference([dict(r) for r in rows], benchmarks=benchmarks, drop=False)
    assert [r["contaminated"] for r in fast.rows] == [r["contaminated"] for r in reference.rows]
    assert fast.info == reference.info
    assert fast.info["flagged"]["math500"] + fast.info["flagged"]["aime24"] >= 10  # the planted ones were seen


def test_benchmarks_by_name_go_through_load_benchmark():
    problems = load_benchmark_problems(["aime24", str(BENCH_DIR / "amc23.jsonl")])
    assert set(problems) == {"aime24", "amc23"}
    assert len(problems["aime24"]) == 30 and len(problems["amc23"]) == 40
