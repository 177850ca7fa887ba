"""Runner: caching, reruns of exactly what changed, DONE last, kill -9 recovery, ledger and cost."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tests.stage_fixtures  # noqa: F401
from pipeline.run import ledger, runner
from pipeline.run.recipe import load_recipe

RECIPE = """
name: t
seed: 0
run_dir: {run_dir}
stages:
  a: {{kind: echo, text: a}}
  b: {{kind: echo, text: b, data: {{from: a}}}}
  c: {{kind: echo, text: c}}
  d: {{kind: echo, text: d, data: {{from: b}}}}
"""


@pytest.fixture
def recipe_path(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(run_dir=tmp_path / "run")))
    return path


def runs(recipe, stage):
    counter = recipe.run_dir / f"{stage}.runs"
    return int(counter.read_text()) if counter.exists() else 0


def test_second_run_skips_everything(recipe_path):
    recipe = load_recipe(recipe_path)
    runner.run(recipe)
    assert [runs(recipe, s) for s in "abcd"] == [1, 1, 1, 1]
    assert all(d.action == "cached" for d in runner.plan(recipe))
    runner.run(recipe)
    assert [runs(recipe, s) for s in "abcd"] == [1, 1, 1, 1]
    for stage in "abcd":
        assert (recipe.run_dir / stage / "DONE").exists() and (recipe.run_dir / stage / "metrics.json").exists()
    manifest = json.loads((recipe.run_dir / "manifest.json").read_text())
    assert manifest["stages"]["d"]["status"] == "cached" and manifest["versions"]["torch"]


def test_changing_one_field_reruns_it_and_its_dependents_only(recipe_path):
    runner.run(load_recipe(recipe_path))
    changed = load_recipe(recipe_path, ["stages.b.text=B"])
    reasons = {d.stage: (d.action, d.reason) for d in runner.plan(changed)}
    assert reasons["a"][0] == "cached" and reasons["c"][0] == "cached"
    assert reasons["b"] == ("run", "config changed")
    assert reasons["d"] == ("run", "upstream will rerun (b)")
    runner.run(changed)
    assert [runs(changed, s) for s in "abcd"] == [1, 2, 1, 2]
    data = json.loads((changed.run_dir / "d" / "config.json").read_text())
    assert data["upstream"]["b"]


def test_force_only_and_from(recipe_path):
    recipe = load_recipe(recipe_path)
    runner.run(recipe)
    runner.run(recipe, force=["a"])
    assert [runs(recipe, s) for s in "abcd"] == [2, 2, 1, 2]
    runner.run(recipe, only="c")
    assert runs(recipe, "c") == 1  # cached, and only c was considered
    runner.run(recipe, from_stage="c")
    assert [runs(recipe, s) for s in "abcd"] == [2, 2, 2, 3]
    with pytest.raises(runner.PlanError, match="--only nope: no such stage"):
        runner.plan(recipe, only="nope")


def test_only_refuses_when_upstream_unfinished(recipe_path):
    with pytest.raises(runner.PlanError, match="upstream a has not finished"):
        runner.plan(load_recipe(recipe_path), only="b")


def test_input_file_change_reruns(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "x", "i": 0}\n')
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\nstages:\n  a: {{kind: echo, data: {data}}}\n")
    runner.run(load_recipe(path))
    data.write_text('{"text": "y", "i": 0}\n')
    (decision,) = runner.plan(load_recipe(path))
    assert decision.action == "run" and decision.reason.startswith("input file changed")


def test_ledger_rows_and_cost_table(recipe_path, capsys):
    from pipeline.cli import main

    recipe = load_recipe(recipe_path)
    runner.run(recipe)
    attempts = ledger.read_attempts(recipe.run_dir)
    assert len(attempts) == 4 and all(a["status"] == "done" for a in attempts)
    assert attempts[0]["rows_processed"] == 3 and attempts[1]["rows_processed"] == 6
    assert attempts[0]["billed_unit"] == "CPU core" and attempts[0]["price_per_device_hour"] == 0.045  # not a GPU's
    assert main(["cost", str(recipe.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "total:" in out and "headline:" in out


KILL_SCRIPT = """
import sys, tests.stage_fixtures
from pipeline.cli import main
sys.exit(main(["run", sys.argv[1]] + sys.argv[2:]))
"""


def test_kill_9_leaves_no_done_and_next_run_recovers(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\nstages:\n  a: {{kind: echo}}\n  slow: {{kind: echo, sleep_s: 30}}\n")
    script = tmp_path / "go.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env, cwd=os.getcwd())
    partial = tmp_path / "run" / "slow" / "partial.txt"
    deadline = time.time() + 60
    while not partial.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert partial.exists(), "the slow stage never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "slow" / "DONE").exists()
    assert not (tmp_path / "run" / "slow" / "dataset").exists()
    quick = subprocess.run([sys.executable, str(script), str(path), "stages.slow.sleep_s=0"], env=env,
                           capture_output=True, text=True, cwd=os.getcwd(), check=False)
    assert quick.returncode == 0, quick.stderr
    assert (tmp_path / "run" / "slow" / "DONE").exists()
    statuses = [(a["stage"], a["status"]) for a in ledger.read_attempts(tmp_path / "run")]
    assert ("slow", "killed") in statuses and ("slow", "done") in statuses


def test_interrupted_stage_is_reported_by_plan(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\nstages:\n  a: {{kind: echo}}\n")
    recipe = load_recipe(path)
    runner.run(recipe)
    (recipe.run_dir / "a" / "DONE").unlink()
    assert runner.plan(recipe)[0].reason == "interrupted (no DONE)"
    assert Path(recipe.run_dir / "a" / "config.json").exists()
