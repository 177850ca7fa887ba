"""One prompt-template syntax: the same template gives the same user message in generate, grpo and evaluate."""

from types import SimpleNamespace

import datasets
import pytest

from pipeline.evaluation.sampling import build_messages
from pipeline.generation.prompts import build_units
from pipeline.stages.evaluate import EvalBenchmark
from pipeline.stages.grpo import build_prompts

# LaTeX braces stay as written, {{ }} is a literal brace, {problem} is the field
TEMPLATE = "Solve: {problem}\nPut the answer in \\boxed{} and write \\frac{{a}}{{b}} as a fraction."
EXPECTED = "Solve: 1+1\nPut the answer in \\boxed{} and write \\frac{a}{b} as a fraction."


def test_the_same_template_renders_the_same_prompt_in_every_stage():
    row = {"id": "p0", "problem": "1+1"}
    units, _ = build_units([row], template=TEMPLATE, system_prompt=None, prefill="", id_column="id",
                           backend=SimpleNamespace(wants_messages=True), chat_template=True)
    generate = units[0].messages[-1]["content"]
    cfg = SimpleNamespace(prompt_template=TEMPLATE, system_prompt=None)
    grpo = build_prompts(datasets.Dataset.from_list([row]), cfg)[0]["prompt"][-1]["content"]
    EvalBenchmark(benchmark="gsm8k", prompt_template=TEMPLATE)  # accepted at recipe load
    evaluate = build_messages("1+1", TEMPLATE, None)[-1]["content"]
    assert generate == grpo == evaluate == EXPECTED


def test_evaluate_names_a_field_it_cannot_fill():
    with pytest.raises(ValueError, match=r"prompt_template: \{a\} is not a field here.*\{\{ or \}\}"):
        EvalBenchmark(benchmark="gsm8k", prompt_template="{problem} \\frac{a}{b}")
