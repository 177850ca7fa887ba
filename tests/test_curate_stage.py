"""The curate stage: a hand-built StageContext run, recipe-time validation, and a run through the runner."""

import json
import logging
import textwrap
from pathlib import Path

import datasets
import pytest
import yaml

from pipeline.data import dataset_card as cards
from pipeline.data.benchmarks import benchmark_file
from pipeline.data.schema import trace_row
from pipeline.run.context import StageContext
from pipeline.run.refs import DataRef
from pipeline.stages.curate import DEFAULT_STEPS, CurateStage, run
from tests.helpers import write_jsonl

MATH500 = benchmark_file("math500")
THINK = "Add the tens, then the units, and check the sum once more before answering."


class StubLedger:
    def __init__(self):
        self.counters = {}

    def add(self, **counters):
        for key, value in counters.items():
            self.counters[key] = self.counters.get(key, 0) + value


def _rows():
    rows = []
    for p in range(6):  # 6 problems x 2 samples; sample 1 of problems 0 and 1 is wrong
        a, b = 10 + p, 20 + 3 * p
        for k in range(2):
            answer = a + b if k == 0 or p > 1 else a + b + 1
            rows.append(trace_row(f"What is {a} plus {b}? Give the number of apples Sam has in total.", THINK,
                                  f"The answer is \\boxed{{{answer}}}", id=f"p{p}", source="test",
                                  gold_answer=str(a + b), sample_index=k, finish_reason="stop"))
    rows.append(trace_row("What is 7 plus 8?", THINK, "\\boxed{15}", id="trunc", source="test", gold_answer="15",
                          finish_reason="length"))
    planted = json.loads(MATH500.read_text().splitlines()[5])
    rows.append(trace_row(planted["problem"], THINK, f"\\boxed{{{planted['answer']}}}", id="planted", source="test",
                          gold_answer=planted["answer"]))
    return rows


def _context(tmp_path, name="curate"):
    stage_dir = tmp_path / "run" / name
    stage_dir.mkdir(parents=True)
    return StageContext(name=name, kind="curate", stage_dir=stage_dir, run_dir=tmp_path / "run", seed=0,
                        fingerprint="f" * 16, upstream={}, ledger=StubLedger(), log=logging.getLogger("test"),
                        recipe_name="test-recipe")


def test_curate_stage_writes_dataset_funnel_and_card(tmp_path):
    source = tmp_path / "traces.jsonl"
    write_jsonl(source, _rows())
    steps = [{"step": "decontaminate", "benchmarks": [str(MATH500)]}, {"step": "filter"},
             {"step": "dedup", "on": "problem"}, {"step": "verify"}]
    cfg = CurateStage(data={"path": str(source)}, steps=steps, card={"license": "mit"})
    ctx = _context(tmp_path)
    result = run(cfg, ctx)

    out = datasets.load_from_disk(str(ctx.stage_dir / result.dataset))
    assert out.num_rows == 10  # 14 in: planted, truncated and 2 wrong answers out
    assert set(out["id"]) == {f"p{p}" for p in range(6)}
    assert all(out["verified"]) and set(out["score"]) == {2.0}
    assert out.column_names[:len(out.column_names) - 1] == list(_rows()[0])  # input columns kept, in order
    assert out[0]["messages"][0]["role"] == "user"  # the column the steps never saw came back
    assert sorted(set(out["pass_rate"])) == [0.5, 1.0]

    funnel = json.loads((ctx.stage_dir / result.report).read_text())
    assert funnel["rows_in"] == 14 and funnel["rows_out"] == 10
    by_step = {s["step"]: s for s in funnel["steps"]}
    assert by_step["decontaminate"]["flagged"] == {"math500": 1}
    assert by_step["filter"]["dropped"] == {"truncated": 1}
    assert by_step["verify"]["dropped"] == {"score below threshold": 2}
    assert result.metrics["rows_in"] == 14 and result.metrics["rows_out"] == 10
    assert ctx.ledger.counters == {"rows_processed": 14}

    front, body = cards.parse_card(ctx.stage_dir / "dataset" / "README.md")
    assert front["license"] == "mit" and front["size_categories"] == ["n<1K"]
    assert yaml.safe_load(yaml.safe_dump(front)) == front
    assert "| verify | 12 | 2 | score below threshold: 2 | 10 |" in body
    assert "| decontaminate | 14 | 1 | contaminated: 1 | 13 |" in body
    assert (ctx.stage_dir / "dataset" / "length_histogram.png").stat().st_size > 1000


def test_empty_result_still_saves_a_dataset_and_card(tmp_path):
    source = tmp_path / "traces.jsonl"
    write_jsonl(source, _rows()[:2])
    cfg = CurateStage(data=DataRef(path=str(source)), steps=[{"step": "select", "max_rows": 1},
                                                             {"step": "filter", "min_tokens": 10_000}],
                      allow_empty=True)
    ctx = _context(tmp_path)
    result = run(cfg, ctx)
    out = datasets.load_from_disk(str(ctx.stage_dir / result.dataset))
    assert out.num_rows == 0 and "problem" in out.column_names
    assert cards.parse_card(ctx.stage_dir / "dataset")[0]["size_categories"] == ["n<1K"]


@pytest.mark.parametrize("steps, message", [
    ([{"step": "dedupe"}], "steps\\[0\\]: unknown step 'dedupe'"),
    ([{"step": "verify"}, {"step": "select", "min_pass_rate": 0.9, "max_pass_rate": 0.1}],
     "steps\\[1\\] \\(select\\)"),
])
def test_bad_steps_fail_at_recipe_load(tmp_path, steps, message):
    from pipeline.run.recipe import RecipeError, load_recipe

    recipe = {"name": "t", "stages": {"curate": {"data": "traces.jsonl", "steps": steps}}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match=f"stages.curate: {message}"):
        load_recipe(path)


def test_yaml_bare_on_key_is_read_as_the_on_parameter(tmp_path):
    from pipeline.run.recipe import load_recipe

    path = tmp_path / "r.yaml"
    (tmp_path / "x.jsonl").write_text('{"problem": "p", "response": "r"}\n')
    path.write_text(f"name: t\nstages:\n  curate:\n    data: {tmp_path / 'x.jsonl'}\n"
                    "    steps: [{step: dedup, on: response}]\n")
    assert load_recipe(path).stage("curate").config.steps == [{"step": "dedup", "on": "response"}]


def test_card_overrides_are_checked():
    with pytest.raises(ValueError, match="card: unknown key 'licence'"):
        CurateStage(data="x.jsonl", card={"licence": "mit"})
    assert CurateStage(data="x.jsonl").steps == list(DEFAULT_STEPS)


@pytest.mark.slow
def test_curate_through_the_runner_records_lineage_and_cost(tmp_path):
    from pipeline.run import runner
    from pipeline.run.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""
        name: curate-e2e
        seed: 0
        run_dir: {tmp_path / "run"}
        stages:
          problems: {{kind: tasks, task: arithmetic, splits: {{train: 40}}}}
          curate:
            data: {{from: problems, split: train}}
            steps: [{{step: dedup, on: problem}}, {{step: verify}}, {{step: select, max_rows: 20}}]
    """))
    results = runner.run(load_recipe(path))
    folder = Path(results["curate"].dataset)
    assert datasets.load_from_disk(str(folder)).num_rows == 20
    front, body = cards.parse_card(folder)
    assert front["pretty_name"] == "curate-e2e/curate"
    assert "arithmetic" in body and "| problems | tasks |" in body  # upstream config and its ledger cost
    metrics = json.loads((tmp_path / "run" / "curate" / "metrics.json").read_text())
    assert metrics["rows_in"] == 40 and metrics["ledger"]["rows_processed"] == 40
