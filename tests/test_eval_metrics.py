"""Evaluation metrics against hand-computed values, and the evaluate stage's config checks."""

import math
import textwrap

import pytest

from pipeline.evaluation import metrics
from pipeline.run.recipe import RecipeError, load_recipe


def exact_pass_at_k(n, c, k):
    return 1 - math.comb(n - c, k) / math.comb(n, k)


def test_pass_at_k_hand_values_and_stability():
    assert metrics.pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert metrics.pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2) = 5/6
    assert metrics.pass_at_k(4, 0, 2) == 0.0
    assert metrics.pass_at_k(4, 3, 2) == 1.0  # n - c < k: every k-subset holds a correct sample
    for n, c, k in [(64, 1, 8), (200, 10, 100), (1000, 3, 500)]:
        assert metrics.pass_at_k(n, c, k) == pytest.approx(exact_pass_at_k(n, c, k), rel=1e-9)
    with pytest.raises(ValueError, match=r"pass@8 needs n >= 8 samples, got n=4"):
        metrics.pass_at_k(4, 1, 8)


def record(pid, i, correct, answer=None, **extra):
    base = {"problem_id": pid, "sample_index": i, "correct": correct, "extracted_answer": answer,
            "format_ok": True, "finish_reason": "stop", "completion_tokens": 10, "thinking_tokens": None,
            "level": None}
    return {**base, **extra}


def no_equivalence(a, b):
    return False


def test_summarize_pass_at_1_stderr_and_pass_at_k():
    # problem a: 2 of 4 correct, problem b: 4 of 4 correct
    records = [record("a", i, i < 2) for i in range(4)] + [record("b", i, True) for i in range(4)]
    m = metrics.summarize(records, ks=[1, 2], equivalent=no_equivalence)
    assert m["pass@1"] == pytest.approx(0.75)
    assert m["pass@1_stderr"] == pytest.approx(math.sqrt(0.125) / math.sqrt(2))  # stdev([.5, 1]) / sqrt(2) = .25
    assert m["pass@1_stderr"] == pytest.approx(0.25)
    assert m["pass@2"] == pytest.approx((5 / 6 + 1) / 2)
    assert m["problems"] == 2 and m["samples_per_problem"] == 4
    with pytest.raises(ValueError, match="pass@8 needs n >= 8 samples, got n=4"):
        metrics.summarize(records, ks=[8])


def test_majority_vote_counts_ties_and_misses():
    assert metrics.majority_vote(["4", "4", "5"], no_equivalence) == 0
    assert metrics.majority_vote(["5", "4", "4"], no_equivalence) == 1
    assert metrics.majority_vote(["4", "5"], no_equivalence) == 0  # tie: the answer seen first wins
    assert metrics.majority_vote(["5", "4"], no_equivalence) == 0
    assert metrics.majority_vote([None, "7", None], no_equivalence) == 1  # no answer, no vote
    assert metrics.majority_vote([None, None], no_equivalence) is None
    assert metrics.majority_vote(["27", "5", "27.0", "5", "27.00"], no_equivalence) == 0  # numbers by value


def test_maj_at_k_on_built_cases():
    gold4 = [record("p", 0, True, "4"), record("p", 1, True, "4"), record("p", 2, False, "5")]
    wrong = [record("q", 0, False, "5"), record("q", 1, True, "4"), record("q", 2, False, "5")]
    tie = [record("r", 0, False, "5"), record("r", 1, True, "4"), record("r", 2, True, "4")]
    m = metrics.summarize(gold4 + wrong + tie, ks=[1, 2, 3], equivalent=no_equivalence)
    # maj@3: p -> 4 (correct), q -> 5 (wrong), r -> 4 (correct)
    assert m["maj@3"] == pytest.approx(2 / 3)
    # maj@2 over the first two: p [4, 4] correct; q [5, 4] tie -> 5 wrong; r [5, 4] tie -> 5 wrong
    assert m["maj@2"] == pytest.approx(1 / 3)
    # maj@1 is the first sample's correctness
    assert m["maj@1"] == pytest.approx(1 / 3)


def test_majority_merges_math_equivalent_answers():
    # \frac{1}{2} and 0.5 are one answer by math_verify, so they outvote the two 3s
    answers = ["3", "\\frac{1}{2}", "3", "0.5", "\\dfrac{1}{2}"]
    assert metrics.majority_vote(answers) == 1
    assert metrics.majority_vote(answers, no_equivalence) == 0


def test_rates_lengths_levels_and_unjudged():
    records = [
        record("a", 0, True, "1", level=1, completion_tokens=10, thinking_tokens=4),
        record("a", 1, False, "2", level=1, finish_reason="length", format_ok=False, completion_tokens=30,
               thinking_tokens=8),
        record("b", 0, False, "1", level=3, completion_tokens=20, thinking_tokens=None),
        record("b", 1, False, "1", level=3, completion_tokens=40, thinking_tokens=None),
        record("c", 0, None, None), record("c", 1, None, None),  # gold answer could not be judged
    ]
    m = metrics.summarize(records, ks=[1], equivalent=no_equivalence)
    assert m["unjudged"] == 1 and m["problems"] == 3
    assert m["pass@1"] == pytest.approx(0.25)  # (0.5 + 0) / 2 judged problems
    assert m["truncation_rate"] == pytest.approx(1 / 6)
    assert m["format_rate"] == pytest.approx(5 / 6)
    assert m["response_tokens_median"] == pytest.approx(15)  # sorted [10, 10, 10, 20, 30, 40]
    assert m["thinking_tokens_mean"] == pytest.approx(6)
    assert m["accuracy_by_level"] == {"1": {"pass@1": 0.5, "problems": 1}, "3": {"pass@1": 0.0, "problems": 1}}


STAGE = """
name: t
run_dir: {tmp}
stages:
  eval:
    kind: evaluate
    models: [some/model]
{body}
"""


def load(tmp_path, body):
    path = tmp_path / "r.yaml"
    path.write_text(STAGE.format(tmp=tmp_path / "run", body=textwrap.indent(textwrap.dedent(body), "    ")))
    return load_recipe(path)


@pytest.mark.parametrize("body,expected", [
    ("benchmarks: [{benchmark: gsm8k, n: 4, k: [1, 8]}]",
     "stages.eval.benchmarks[0]: k: pass@8 needs n >= 8 samples, got n=4"),
    ("benchmarks: [{benchmark: gsm8kk}]", "unknown benchmark 'gsm8kk'; use one of gsm8k"),
    ("benchmarks: [{benchmark: gsm8k, data: x.jsonl}]", "give exactly one of benchmark"),
    ("benchmarks: [{benchmark: gsm8k, prompt_template: 'Solve it'}]", "prompt_template: must contain {problem}"),
    ("benchmarks: [{benchmark: gsm8k}]\nrewards: [{name: acuracy}]", "rewards[0]: unknown reward 'acuracy'"),
    ("benchmarks: [{benchmark: gsm8k}]\nrewards: [think_format]", "correct_reward: 'accuracy' is not among rewards"),
    ("benchmarks: [{benchmark: gsm8k}]\nbudgets: [64]\nbudget_mode: extend", "extend needs budgets"),
    ("benchmarks: [{benchmark: gsm8k}]\nbudgets: [0]", "budgets: each budget is a positive number"),
    ("benchmarks: [{benchmark: gsm8k}, {benchmark: gsm8k}]", "names must be distinct"),
    ("benchmarks: [{benchmark: gsm8k}]\nmodel_names: [a, b]", "model_names: 2 names for 1 models"),
])
def test_bad_configs_fail_at_load_naming_the_key(tmp_path, body, expected):
    with pytest.raises(RecipeError) as info:
        load(tmp_path, body)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_good_config_loads_with_r1_defaults(tmp_path):
    recipe = load(tmp_path, "benchmarks: [{benchmark: math500, n: 8, k: [1, 8]}]\nbudgets: [256, 64]")
    cfg = recipe.stages[0].config
    assert (cfg.temperature, cfg.top_p) == (0.6, 0.95)
    assert cfg.benchmarks[0].name == "math500" and cfg.budgets == [64, 256]
    assert "\\boxed{}" in cfg.benchmarks[0].prompt_template
