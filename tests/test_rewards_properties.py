"""Hostile completions through every rule-based reward: never an exception, always None or a float in range.

Hypothesis runs derandomized (same examples every run) with a modest example count; each example is a batch of
completions scored by all the rewards below, so every run pushes a few thousand completions through them.
"""

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import build_reward

# name -> (spec, inclusive range of its scores, may it return None)
RULE_BASED = {
    "think_format": ({"name": "think_format"}, (0.0, 1.0), False),
    "think_format_strict": ({"name": "think_format", "strict": True}, (0.0, 1.0), False),
    "tag_count": ({"name": "tag_count"}, (0.0, 1.0), False),
    "accuracy": ({"name": "accuracy", "timeout_s": 0.3}, (0.0, 1.0), True),
    "countdown": ({"name": "countdown"}, (0.0, 1.0), True),
    "language_consistency": ({"name": "language_consistency", "language": "zh"}, (0.0, 1.0), True),
    "cosine_length": ({"name": "cosine_length", "max_len": 50, "timeout_s": 0.3}, (-1.0, 1.0), True),
    "soft_overlong": ({"name": "soft_overlong", "max_len": 64, "cache_len": 16}, (-1.0, 0.0), False),
    "repetition_penalty": ({"name": "repetition_penalty", "max_penalty": -0.5}, (-0.5, 0.0), False),
    "reasoning_steps": ({"name": "reasoning_steps"}, (0.0, 1.0), False),
    "harmlessness": ({"name": "harmlessness"}, (0.0, 1.0), False),
}
FNS = {name: build_reward(spec) for name, (spec, _, _) in RULE_BASED.items()}

PIECES = [
    "<think>", "</think>", "<answer>", "</answer>", "<think>\n", "\n</think>\n", "\\boxed{", "\\boxed", "\\fbox{",
    "{", "}", "\\{", "\\}", "$", "$$", "\\(", "\\)", "\\[", "\\]", "\\frac{1}{2}", "\\frac{", "42", "-7", "1,234",
    "3, 4", " or ", "=", " = 16", "\n", "Step 1:", "First,", "- ", "中文思考", "Привет", "ひらがな", "🙂", "\x00",
    "\ud800", "\u202e", "\u200b", " ", "(", ")", "**", "/0", "9" * 60, "3 + 5 + 8", "× ÷ −", "\\times", "#### 72",
    "kill yourself", "1e309", "nan", "inf", "\\infty", "x^{2^{30}}", "\\sqrt{", "\\text{", "%", "\\\\", "\t",
]
text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), max_size=25).map("".join)
huge = st.tuples(text, st.integers(min_value=100, max_value=5_000)).map(lambda t: (t[0] or "{") * t[1])
completion = st.one_of(  # megabyte completions are in HOSTILE below: here up to ~100 kB keeps the examples many
    text,
    text.map(lambda s: [{"role": "assistant", "content": s}]),
    st.one_of(huge, st.just("")).filter(lambda s: len(s) < 100_000),
)
golds = st.one_of(st.sampled_from(["42", "-7", "\\frac{14}{3}", "27.0", "#### 18", "1234", "}{", "", "x"]),
                  st.none(), st.integers(-5, 5), st.text(max_size=8))
numbers = st.one_of(st.lists(st.integers(0, 100), max_size=5), st.none(), st.lists(st.text(max_size=2), max_size=3))
targets = st.one_of(st.integers(-10, 200), st.none(), st.floats(allow_nan=True), st.text(max_size=3))
prompts = st.one_of(st.text(max_size=10), st.just("<|assistant|><think>\n"), st.none())


def assert_scores(name, scores, n):
    _, (low, high), may_be_none = RULE_BASED[name]
    assert isinstance(scores, list) and len(scores) == n, name
    for value in scores:
        if value is None:
            assert may_be_none, f"{name} returned None"
            continue
        assert type(value) is float and math.isfinite(value), (name, value)
        assert low - 1e-12 <= value <= high + 1e-12, (name, value)


def score_all(batch, names=tuple(FNS), **columns):
    for name in names:
        assert_scores(name, FNS[name](batch, **columns), len(batch))


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(st.data())
def test_random_hostile_batches(data):
    n = data.draw(st.integers(1, 4))
    batch = data.draw(st.lists(completion, min_size=n, max_size=n))
    columns = {
        "gold_answer": data.draw(st.lists(golds, min_size=n, max_size=n)),
        "numbers": data.draw(st.lists(numbers, min_size=n, max_size=n)),
        "target": data.draw(st.lists(targets, min_size=n, max_size=n)),
        "prompts": data.draw(st.lists(prompts, min_size=n, max_size=n)),
        "trainer_state": None,
        "completion_ids": [[1, 2, 3]] * n,
    }
    score_all(batch, **columns)


HOSTILE = [
    "",
    " ",
    "<think>",
    "</think>",
    "<think></think>",
    "<think>" * 200_000,
    "</think>" * 200_000,
    "<think>a</think>" + "\\boxed{" * 50_000,
    "<think>a</think>" + "{" * 1_000_000,
    "<think>a</think>" + "}" * 1_000_000,
    "<think>a</think>\\boxed{" + "{" * 5_000 + "}" * 5_000 + "}",
    "<think>a</think>" + "<answer>" * 100_000 + "42",
    "<think>a</think>" + "9" * 1_000_000,
    "<think>a</think>" + "1, " * 300_000,
    "<think>" + "中文" * 300_000 + "</think>42",
    "<think>" + "\\(" * 300_000 + "</think>42",
    "<think>" + "$" * 300_000 + "</think>42",
    "<think>a</think>\\boxed{" + "(" * 15 + "1" + ")" * 15 + "}",
    "<think>a</think>\\boxed{9^{9^{9^{9}}}}",
    "<think>a</think>\\boxed{\\frac{1}{0}}",
    "<think>a</think><answer>" + "(" * 199 + "3+5" + ")" * 199 + "</answer>",
    "<think>a</think><answer>" + "+".join(["1"] * 400) + "</answer>",
    "<think>a</think>" + "word " * 200_000,
    "\ud800\udfff\x00\u202e",
    [{"role": "assistant", "content": None}],
    [{"role": "assistant", "content": [{"type": "text", "text": "<think>x</think>42"}, "junk", None]}],
    [{"role": "assistant"}, "not a message", 5],
    None,
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_fixed_hostile_completions(hostile):
    start = time.monotonic()
    columns = {"gold_answer": ["\\frac{14}{3}"], "numbers": [[3, 5, 8]], "target": [16], "prompts": ["q"]}
    score_all([hostile], **columns)
    score_all([hostile], names=("accuracy", "cosine_length"), **{**columns, "gold_answer": ["42"]})
    assert time.monotonic() - start < 15.0  # bounded even for megabytes on a loaded 2-core machine
