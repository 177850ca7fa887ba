"""The evaluate stage end to end with real tiny models (transformers backend), the procedural oracle, and
`reasonforge eval`."""

import json
import textwrap

import pytest

from pipeline.run import runner
from pipeline.run.recipe import load_recipe
from tests.helpers import save_tiny_model, write_jsonl

RECIPE = """
name: t
seed: 0
run_dir: {run}
stages:
  problems: {{kind: tasks, task: arithmetic, splits: {{train: 8, test: 4}}, params: {{digits: 1, operands: 2}}}}
  eval:
    kind: evaluate
    models: [{model_a}, {model_b}]
    model_names: [seed0, seed1]
    benchmarks:
      - {{name: arith, data: {{from: problems, split: test}}, n: 2, k: [1, 2], prompt_template: "{{problem}}"}}
      - {{benchmark: {jsonl}, n: 2, limit: 3}}
    max_new_tokens: 12
    prefill: "<think>\\n"
    budgets: [4, 8]
"""




@pytest.fixture(scope="module")
def second_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("seed1") / "model", seed=1)


@pytest.fixture
def small_jsonl(tmp_path):
    path = tmp_path / "small.jsonl"
    rows = [{"question": f"What is {a} plus {b}?", "answer": str(a + b)} for a, b in [(1, 2), (3, 4), (5, 6), (7, 1)]]
    return write_jsonl(path, rows)


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_tiny_models_two_benchmarks_with_budgets(tmp_path, tiny_model_dir, second_model_dir, small_jsonl):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(run=tmp_path / "run", model_a=tiny_model_dir,
                                                  model_b=second_model_dir, jsonl=small_jsonl)))
    recipe = load_recipe(path)
    result = runner.run(recipe)["eval"]
    stage_dir = recipe.run_dir / "eval"
    for name in ("results.md", "results.json", "accuracy.png", "accuracy_vs_length.png", "budget_curve.png"):
        assert (stage_dir / name).stat().st_size > 0, name
    table = (stage_dir / "results.md").read_text()
    assert "| model | arith | small |" in table and "| seed0 |" in table and "| seed1 |" in table
    assert set(result.metrics) == {"seed0", "seed1"} and set(result.metrics["seed0"]) == {"arith", "small"}
    m = result.metrics["seed1"]["arith"]
    assert m["problems"] == 4 and m["samples_per_problem"] == 2 and "pass@2" in m and "maj@2" in m
    assert set(m["budget_pass@1"]) == {"4", "8"}  # one point per budget
    files = sorted(p.name for p in (stage_dir / "samples").iterdir())
    assert len(files) == 2 * 2 * 3  # models x benchmarks x (no budget + 2 budgets)
    plain = {label: read(stage_dir / "samples" / f"{label}__arith.jsonl") for label in ("seed0", "seed1")}
    assert len(plain["seed0"]) == 8
    assert [r["completion"] for r in plain["seed0"]] != [r["completion"] for r in plain["seed1"]]
    first = plain["seed0"][0]
    assert first["prompt"].endswith("<|assistant|>\n<think>\n") and first["response"].startswith("<think>\n")
    assert set(first["scores"]) == {"accuracy", "think_format"} and first["gold_answer"]
    assert all(r["completion_tokens"] <= 12 for r in plain["seed0"])
    for budget in (4, 8):
        for r in read(stage_dir / "samples" / f"seed0__small__budget{budget}.jsonl"):
            assert r["thinking_tokens"] <= budget and r["budget"] == budget
            if r["forced_close"]:  # the thinking hit the cap: the close sits right after it
                assert r["thinking_tokens"] == budget and "\n</think>\n" in r["completion"]
                assert r["response"].count("</think>") >= 1
    forced = [r["forced_close"] for r in read(stage_dir / "samples" / "seed1__arith__budget4.jsonl")]
    assert any(forced)  # an untrained model does not close its thinking within 4 tokens
    ledger_row = json.loads((stage_dir / "metrics.json").read_text())["ledger"]
    assert ledger_row["tokens_generated"] > 0 and ledger_row["tokens_prompt"] > 0 and ledger_row["params"] > 0


def test_procedural_oracle_scores_full_marks(tmp_path, tiny_model_dir):
    """The reference solutions, graded by the RL rewards, must be 100% correct and well formatted."""
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""
        name: t
        run_dir: {tmp_path / 'run'}
        stages:
          problems: {{kind: tasks, task: multiplication, splits: {{train: 8, test: 5}}}}
          eval:
            kind: evaluate
            backend: procedural
            models: [{tiny_model_dir}]
            benchmarks: [{{data: {{from: problems, split: test}}, n: 2, k: [2], prompt_template: "{{problem}}"}}]
    """))
    result = runner.run(load_recipe(path))["eval"]
    ((label, per_benchmark),) = result.metrics.items()
    assert label == f"{tiny_model_dir.parent.name}-model"  # a folder called model is named with its parent
    (m,) = per_benchmark.values()
    assert m["pass@1"] == 1.0 and m["maj@2"] == 1.0 and m["format_rate"] == 1.0 and m["problems"] == 5
    assert m["pass@1_stderr"] == 0.0 and m["thinking_tokens_mean"] > 0


def test_reasonforge_eval_cli(tmp_path, tiny_model_dir, small_jsonl, capsys):
    from pipeline.cli import main

    out = tmp_path / "out"
    code = main(["eval", "--model", str(tiny_model_dir), "--benchmark", str(small_jsonl), "--n", "2", "--limit", "3",
                 "--max-new-tokens", "8", "--prompt-template", "{problem}", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| model | small |" in printed and str(out / "eval") in printed
    (samples,) = (out / "eval" / "samples").iterdir()
    records = read(samples)
    assert len(records) == 6 and {r["problem_id"] for r in records} == {"small-0", "small-1", "small-2"}
    assert main(["eval", "--model", str(tiny_model_dir), "--benchmark", str(small_jsonl), "--n", "2",
                 "--k", "4"]) == 2
    assert "pass@4 needs n >= 4 samples, got n=2" in capsys.readouterr().err
