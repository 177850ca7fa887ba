"""build_reward, list_rewards, REGISTRY and weighted_sum: the API the pipeline codes against."""

import inspect
import re
import subprocess
import sys
import textwrap

import pytest

import rewards
from rewards import REGISTRY, build_reward, list_rewards, weighted_sum

RULE_BASED = ["think_format", "tag_count", "accuracy", "countdown", "language_consistency", "cosine_length",
              "soft_overlong", "repetition_penalty", "reasoning_steps", "harmlessness"]


def test_every_family_is_registered():
    assert set(RULE_BASED) | {"helpfulness"} <= set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_reward_builds_by_name_and_documents_its_range(name):
    if name == "helpfulness":
        fn = build_reward({"name": name, "weight": 0.5, "model": "some/path"})  # loads nothing until called
    else:
        fn = build_reward(name)
    assert fn.__name__ == name
    doc = inspect.getdoc(REGISTRY[name])
    assert "Range:" in doc, f"{name}'s docstring must state its range"


def test_build_reward_ignores_weight_and_binds_params():
    fn = build_reward({"name": "reasoning_steps", "weight": 3.0, "steps": 1})
    assert fn(["Step 1: go"]) == [1.0]


def test_unknown_name_lists_available_closest_first():
    with pytest.raises(ValueError) as error:
        build_reward({"name": "acuracy"})
    message = str(error.value)
    assert message.startswith("Unknown reward 'acuracy'. Available: accuracy, ")
    for name in REGISTRY:
        assert name in message


def test_unknown_param_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=re.escape("Unknown parameter 'gold' for reward 'accuracy'. Valid parameters: "
                                                   "gold_column, timeout_s")):
        build_reward({"name": "accuracy", "gold": "x"})


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "soft_overlong", "max_len": 10, "cache_len": 20},
        {"name": "soft_overlong", "max_len": -1},
        {"name": "repetition_penalty", "max_penalty": 0.5},
        {"name": "helpfulness"},
        {"name": "helpfulness", "model": "m", "judge": {"base_url": "u", "model": "m"}},
        {"name": "helpfulness", "model": "m", "normalize": "softmax"},
        {"name": "helpfulness", "judge": {"base_url": "u", "model": "m", "key": "secret"}},
        {"name": "harmlessness", "patterns": ["(unclosed"]},
        {"name": "accuracy", "timeout_s": 0},
        {"weight": 1.0},
        "",
    ],
)
def test_bad_params_fail_at_build_time(spec):
    with pytest.raises(ValueError):
        build_reward(spec)


def test_list_rewards_rows():
    rows = list_rewards()
    assert [row[0] for row in rows] == sorted(REGISTRY)
    by_name = {name: (help_line, params) for name, help_line, params in rows}
    assert by_name["accuracy"][1] == {"gold_column": "gold_answer", "timeout_s": 2.0}
    assert by_name["think_format"][1]["strict"] is False
    assert all(help_line and "\n" not in help_line for help_line, _ in by_name.values())


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        def length_bonus(completions, bonus=0.0, **kwargs):
            return [len(c) + bonus for c in completions]

        def make_constant(value=1.0):
            def constant(completions, **kwargs):
                return [value] * len(completions)
            return constant

        def broken(completions, **kwargs):
            return [1.0]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_rewards"
    sys.modules.pop("my_rewards", None)


def test_dotted_path_reward_function_and_factory(user_module):
    fn = build_reward({"name": f"{user_module}.length_bonus", "weight": 2.0, "bonus": 0.5})
    assert fn.__name__ == "my_rewards.length_bonus"
    assert fn(["ab", "abcd"], prompts=["p", "p"]) == [2.5, 4.5]
    factory_made = build_reward({"name": f"{user_module}.make_constant", "value": 0.25})
    assert factory_made(["x", "y"]) == [0.25, 0.25]
    with pytest.raises(ValueError, match="Unknown parameter 'scale'.*Valid parameters: value"):
        build_reward({"name": f"{user_module}.make_constant", "scale": 2})
    with pytest.raises(ValueError, match="returned 1 scores for 2 completions"):
        build_reward(f"{user_module}.broken")(["a", "b"])


def test_dotted_path_that_does_not_import():
    with pytest.raises(ValueError, match="Cannot import reward 'no_such_module.fn'"):
        build_reward("no_such_module.fn")
    with pytest.raises(ValueError, match="Cannot import reward 'rewards.no_such_fn'"):
        build_reward("rewards.no_such_fn")


def test_weighted_sum_skips_rewards_that_cannot_judge():
    def a(completions, **kwargs):
        return [1.0, None, 0.5]

    def b(completions, **kwargs):
        return [None, None, 2.0]

    assert weighted_sum([a, b], [2.0, 0.5], ["x", "y", "z"]) == [2.0, None, 2.0]
    assert weighted_sum([], [], ["x"]) == [None]
    with pytest.raises(ValueError, match="2 rewards but 1 weights"):
        weighted_sum([a, b], [1.0], ["x", "y", "z"])
    with pytest.raises(ValueError, match="Reward 'a' returned 3 scores for 2 completions"):
        weighted_sum([a], [1.0], ["x", "y"])


def test_weighted_sum_with_built_rewards_and_columns():
    fns = [build_reward("accuracy"), build_reward("think_format")]
    completions = ["<think>r</think>\\boxed{4}", "\\boxed{4}", "<think>r</think>\\boxed{5}"]
    assert weighted_sum(fns, [1.0, 0.2], completions, gold_answer=["4", "4", None]) == [1.2, 1.0, 0.2]


def test_import_is_light_and_does_not_touch_pipeline():
    heavy = ("torch", "sympy", "math_verify", "transformers", "pipeline")
    code = f"import sys, rewards; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    source = "\n".join(p.read_text() for p in __import__("pathlib").Path(rewards.__file__).parent.glob("*.py"))
    assert not re.search(r"^\s*(from|import) pipeline", source, re.MULTILINE)
