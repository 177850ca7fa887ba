"""Curation steps on hand-built canonical rows: each step drops exactly the rows it should, under the right reason."""

import pytest

from pipeline.curation import run_steps, validate_steps
from pipeline.curation.dedup import dedup, near_duplicates
from pipeline.curation.filters import filter_rows, repeat_fraction, script_fraction
from pipeline.curation.selection import select
from pipeline.data.schema import trace_row

THINK = "First add the tens, then the units, and check the sum once more before answering."
LONG_PROBLEM = ("A farmer has a rectangular field whose length is three times its width. He builds a fence around "
                "the whole field and then divides it into two equal parts with one more fence parallel to the "
                "shorter side. If the total length of fence used is 240 meters, what is the area of the field in "
                "square meters, and how long is each of the two fences on the shorter sides?")


def row(problem="What is 2 + 2?", thinking=THINK, answer="The answer is \\boxed{4}", *, id="p0", gold="4", **extra):
    return trace_row(problem, thinking, answer, id=id, source="test", gold_answer=gold, **extra)


def have_rewards():
    try:
        from rewards import build_reward

        build_reward("accuracy")
        build_reward("think_format")
        return True
    except (ImportError, ValueError):  # not built yet, or without these rewards
        return False


needs_rewards = pytest.mark.skipif(not have_rewards(), reason="rewards package (accuracy, think_format) not there")


# ---------------------------------------------------------------- verify


@needs_rewards
def test_verify_drops_the_wrong_answers_exactly():
    from pipeline.curation.verify import verify

    rows = [row(id=f"p{i}") for i in range(10)]
    for i in (1, 4, 7):
        rows[i] = row(answer="The answer is \\boxed{5}", id=f"p{i}")
    out = verify(rows)
    assert out.dropped == {"score below threshold": 3}
    assert len(out.rows) == 7
    assert all(r["verified"] is True and r["score"] == 2.0 for r in out.rows)


@needs_rewards
def test_verify_default_rule_needs_both_accuracy_and_format():
    from pipeline.curation.verify import verify

    no_think = row(thinking=None, id="a")  # right answer, no think block
    out = verify([no_think, row(id="b")])
    assert [r["id"] for r in out.rows] == ["b"]
    assert no_think["score"] == 1.0 and no_think["verified"] is False


@needs_rewards
def test_verify_unverifiable_rows_are_dropped_or_kept_on_request():
    from pipeline.curation.verify import verify

    rows = [row(id="a"), row(id="b", gold=None)]
    assert verify(rows).dropped == {"unverifiable": 1}
    kept = verify([row(id="a"), row(id="b", gold=None)], keep_unverifiable=True)
    assert len(kept.rows) == 2 and kept.rows[1]["score"] is None and kept.rows[1]["verified"] is None


def test_verify_pass_rate_counts_failures_before_they_are_dropped(monkeypatch):
    from pipeline.curation import verify as verify_module

    # A stub reward: 1.0 when the answer holds "yes", None when it holds "?", else 0.0.
    def build(spec):
        return lambda completions, **cols: [None if "?" in c else float("yes" in c) for c in completions]

    monkeypatch.setattr(verify_module, "build_reward", build)
    rows = [row(answer=a, id=i) for i, a in [("a", "yes"), ("a", "no"), ("a", "no"), ("a", "yes"), ("b", "?")]]
    out = verify_module.verify(rows, rewards=[{"name": "stub", "weight": 1.0}], threshold=1.0)
    assert out.dropped == {"score below threshold": 2, "unverifiable": 1}
    assert [r["pass_rate"] for r in out.rows] == [0.5, 0.5]


def test_verify_changed_rewards_need_a_threshold():
    with pytest.raises(ValueError, match="threshold"):
        validate_steps([{"step": "verify", "rewards": [{"name": "accuracy"}]}])


@needs_rewards
def test_verify_unknown_reward_fails_at_validation():
    with pytest.raises(ValueError, match="Unknown reward 'acuracy'"):
        validate_steps([{"step": "verify", "rewards": [{"name": "acuracy"}], "threshold": 1.0}])


# ---------------------------------------------------------------- filter


def test_filter_counts_each_reason_once():
    rows = [
        row(id="ok"),
        row(id="trunc", finish_reason="length"),
        row(id="empty", thinking="   "),
        row(id="none", thinking=None),
        row(id="loop", thinking="Wait, the answer is four. " * 40),
        row(id="mixed", thinking="我们先把十位相加，然后把个位相加，最后检查一下总和是否正确。 so 4"),
        row(id="long", thinking=" ".join(f"step {i} adds {i + 1}." for i in range(100))),
        row(id="short", thinking="4", answer="4"),
    ]
    out = filter_rows(rows, min_tokens=5, max_tokens=300)
    assert out.dropped == {"truncated": 1, "no thinking": 2, "repetitive": 1, "mixed script": 1, "too long": 1,
                           "too short": 1}
    assert [r["id"] for r in out.rows] == ["ok"]


def test_filter_checks_switch_off():
    rows = [row(id="trunc", finish_reason="length"), row(id="none", thinking=None),
            row(id="loop", thinking="Wait, the answer is four. " * 40), row(id="mixed", thinking="先相加再检查 " * 5)]
    out = filter_rows(rows, require_thinking=False, drop_truncated=False, max_repeat_fraction=None, script=None)
    assert out.dropped == {} and len(out.rows) == 4


def test_filter_length_by_tokenizer(tmp_path):
    from pipeline.training import models

    tok = models.build_char_tokenizer()  # one token per character
    tok.save_pretrained(tmp_path / "tok")
    rows = [row(id="a"), row(id="b", thinking="Multiplication distributes: seventeen times twelve equals "
                                               "one hundred seventy plus thirty four.")]
    by_words = filter_rows(rows, max_tokens=30)
    by_chars = filter_rows(rows, max_tokens=120, tokenizer=str(tmp_path / "tok"))
    assert len(by_words.rows) == 2
    assert by_chars.dropped == {"too long": 1} and by_chars.rows[0]["id"] == "a"


def test_repetition_and_script_measures():
    assert repeat_fraction("a b c d e f g h", 4) == 0.0
    assert repeat_fraction("x y z w " * 50, 4) > 0.9
    assert script_fraction("plain ascii, $\\alpha$ = 3") == 1.0
    assert script_fraction("abcd中文") == pytest.approx(4 / 6)
    assert script_fraction("中文", "han") == 1.0


def test_script_fraction_is_the_language_rewards_rule():
    """One rule for the filter and the reward: variables and math do not count against a Chinese chain of thought."""
    from rewards.language import SCRIPTS
    from rewards.language import script_fraction as reward_fraction

    text = "设x为宽度，那么长度是3x，$2(x+3x)=240$。" * 3
    assert script_fraction(text, "han") == 1.0 == reward_fraction(text, SCRIPTS["han"])
    assert script_fraction("$x + y$ = 3, \\alpha", "han") == 1.0  # no letters left: nothing to judge
    assert script_fraction("words here", "han") == 0.0 == reward_fraction("words here", SCRIPTS["han"])


# ---------------------------------------------------------------- dedup


def test_dedup_exact_keeps_every_sample_of_the_first_problem():
    rows = [row(LONG_PROBLEM, id="a", sample_index=k) for k in range(3)]
    rows += [row("  " + LONG_PROBLEM.upper().replace(",", " ;"), id="b", sample_index=k) for k in range(2)]
    rows += [row("What is the smallest prime larger than one hundred?", id="c")]
    out = dedup(rows, near=False)
    assert out.dropped == {"exact duplicate": 2}
    assert [r["id"] for r in out.rows] == ["a", "a", "a", "c"]


def test_dedup_near_duplicate_paraphrase_caught_and_different_problem_kept():
    paraphrase = LONG_PROBLEM.replace("A farmer has", "A farmer owns").replace("whole field", "entire field")
    other = ("A rectangular garden is twice as long as it is wide. Its perimeter is 60 meters. A path one meter "
             "wide runs around the outside of the garden. What is the area of the path in square meters?")
    rows = [row(LONG_PROBLEM, id="a"), row(LONG_PROBLEM, id="a"), row(paraphrase, id="b"), row(other, id="c")]
    out = dedup(rows, threshold=0.8)
    assert out.dropped == {"near duplicate": 1}
    assert [r["id"] for r in out.rows] == ["a", "a", "c"]
    assert out.info["duplicate_groups"] == 1


def test_dedup_on_response_compares_samples_of_one_problem_too():
    rows = [row(id="a"), row(id="a"), row(id="a", thinking="Another way: count four objects, so two plus two.")]
    out = dedup(rows, on="response")
    assert out.dropped == {"exact duplicate": 1} and len(out.rows) == 2


def test_near_duplicates_is_seeded_and_scales():
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(vocab) for _ in range(60)) for _ in range(1500)]
    texts += [t.replace(t.split()[10], "changed", 1) for t in texts[:50]]  # one word changed: Jaccard ~0.9
    first = near_duplicates(texts, threshold=0.8, seed=1)
    assert first == near_duplicates(texts, threshold=0.8, seed=1)
    assert sum(d is not None for d in first[:1500]) == 0
    assert first[1500:] == list(range(50))


# ---------------------------------------------------------------- select


def _graded(id, rate, n=4, **extra):
    return [row(id=id, pass_rate=rate, score=2.0 if k < n * rate else 1.0, verified=k < n * rate,
                thinking=THINK + " more" * k, **extra) for k in range(n)]


def test_select_band_drops_trivial_and_hopeless_prompts():
    rows = _graded("easy", 1.0) + _graded("mid", 0.5) + _graded("hard", 0.0)
    out = select(rows, min_pass_rate=0.1, max_pass_rate=0.9)
    assert out.dropped == {"pass rate above band": 4, "pass rate below band": 4}
    assert {r["id"] for r in out.rows} == {"mid"}


def test_select_keep_modes():
    rows = _graded("mid", 0.5)
    best = select(rows, keep="best", per_prompt=1)
    assert best.dropped == {"per-prompt cap": 3} and best.rows[0]["score"] == 2.0
    assert best.rows[0]["thinking"] == THINK  # ties on score go to the shorter
    shortest = select(rows, keep="shortest", per_prompt=2)
    assert [r["thinking"] for r in shortest.rows] == [THINK, THINK + " more"]
    some = select(rows + _graded("b", 0.5), keep="all", per_prompt=3, seed=3)
    assert len(some.rows) == 6 and some.rows == select(rows + _graded("b", 0.5), keep="all", per_prompt=3,
                                                       seed=3).rows


def test_select_max_rows_is_stratified_and_seeded():
    rows = [row(id=f"p{i}", level=1 if i < 80 else 5) for i in range(100)]
    out = select(rows, max_rows=10, stratify_by="level", seed=0)
    assert out.dropped == {"max_rows cap": 90}
    assert sorted(r["level"] for r in out.rows) == [1] * 8 + [5] * 2
    assert out.rows == select(rows, max_rows=10, stratify_by="level", seed=0).rows


def test_select_without_pass_rates_says_what_to_do():
    with pytest.raises(ValueError, match="verify step before it"):
        select([row()], min_pass_rate=0.5)


# ---------------------------------------------------------------- run_steps


def test_select_after_verify_in_one_step_list_sees_the_failures(monkeypatch):
    from pipeline.curation import verify as verify_module

    monkeypatch.setattr(verify_module, "build_reward", lambda spec: lambda completions, **cols: [
        float("yes" in c) for c in completions])
    answers = {"easy": ["yes"] * 4, "mid": ["yes", "yes", "no", "no"], "hard": ["no"] * 4}
    rows = [row(answer=a, id=i) for i, ans in answers.items() for a in ans]
    steps = [{"step": "verify", "rewards": [{"name": "stub"}], "threshold": 1.0},
             {"step": "select", "min_pass_rate": 0.25, "max_pass_rate": 0.75}]
    kept, funnel = run_steps(rows, steps, seed=0)
    assert [r["id"] for r in kept] == ["mid", "mid"]
    assert funnel["rows_in"] == 12 and funnel["rows_out"] == 2
    assert funnel["steps"][0]["dropped"] == {"score below threshold": 6}
    assert funnel["steps"][1]["dropped"] == {"pass rate above band": 4}
    assert funnel["steps"][1]["rows_in"] == 6
    assert funnel["columns_written"] == ["score", "verified", "pass_rate"]


@pytest.mark.parametrize("steps, message", [
    ([{"step": "dedupe"}], "unknown step 'dedupe': did you mean 'dedup'.*valid steps: verify, filter"),
    ([{"step": "dedup", "treshold": 0.8}], "unknown parameter 'treshold'.*did you mean 'threshold'.*valid"),
    ([{"step": "dedup", "on": "answer"}], "steps\\[0\\] \\(dedup\\): on must be 'problem' or 'response'"),
    ([{"step": "select", "keep": "longest"}], "keep must be one of all, best, shortest"),
    ([{"step": "filter", "script": "klingon"}], "unknown script 'klingon'"),
])
def test_bad_step_specs_name_the_problem(steps, message):
    with pytest.raises(ValueError, match=message):
        run_steps([row()], steps)
