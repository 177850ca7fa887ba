"""Every shipped real-scale recipe rehearses to the end offline: the real tokenizers, chat templates and configs of
its hub models (tests/offline_hub.py), shrunk, on the first rows of its datasets, with a table and a projection."""

import json
from pathlib import Path

import pytest

from pipeline.cli import main

REAL_SCALE = ["distill-qwen2.5-math-1.5b-openr1", "grpo-qwen2.5-1.5b-math", "r1-pipeline-full", "eval-r1-distill",
              "synthesize-openai-teacher"]
TRAINING = ("sft", "grpo", "reward_model", "distill")


def rehearse(name: str, run_dir: Path, *options: str) -> tuple[int, dict]:
    code = main(["run", f"recipes/{name}.yaml", "--rehearse", *options, f"run_dir={run_dir}"])
    return code, json.loads((Path(f"{run_dir}.rehearsal") / "rehearsal.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_SCALE)
def test_a_shipped_real_scale_recipe_rehearses_to_the_end(offline_hub, tmp_path, name, capsys):
    code, report = rehearse(name, tmp_path / "run", "--rehearse-no-launch")
    failed = [(s["stage"], s["error"]) for s in report["stages"] if s["status"] != "passed"]
    assert code == 0 and not failed, failed
    printed = capsys.readouterr().out
    assert f"# Rehearsal of {name}" in printed and "| total |" in printed
    for stage in report["stages"]:
        checks = {c[0].split(" [")[0]: c[1] for c in stage["checks"]}
        if stage["kind"] in TRAINING:
            assert checks["resumed from checkpoint"] and checks["saved model reloads"], stage["stage"]
            assert stage["cost"]["flops"] > 0 and stage["cost"]["device_hours"] > 0, stage["stage"]
        if stage["kind"] in TRAINING + ("generate", "evaluate"):
            assert checks.get("turn end = eos = stop", True) is True, stage  # every model stops where it ends a turn
    for info in report["models"].values():  # the real models' sizes, not the shrunk ones
        assert info["params_full"] > 1e9 and info["params_rehearsal"] < info["params_full"] / 50
    if name == "grpo-qwen2.5-1.5b-math":
        # projected from the hub's full size: MATH-lighteval's 7,500 problems as its README states (the fixture
        # holds 48), 8 samples each, a quarter of the 2,048-token budget assumed per completion
        rl = next(s for s in report["stages"] if s["stage"] == "rl")
        assert rl["cost"]["rows"] == 7500
        assert rl["cost"]["tokens_generated"] == pytest.approx(7500 * 8 * 0.25 * 2048)


@pytest.mark.slow
def test_a_launch_stage_rehearses_on_two_cpu_processes(offline_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, report = rehearse("distill-qwen2.5-math-1.5b-openr1", tmp_path / "run")
    assert code == 0, report
    assert any("zero3.yaml -> plain DDP on 2 CPU processes" in note for note in report["notes"])
    rows = [json.loads(line) for line in (tmp_path / "run.rehearsal" / "ledger.jsonl").read_text().splitlines()]
    assert any(r["stage"] == "distill" and r.get("processes") == 2 and r["status"] == "done" for r in rows)
