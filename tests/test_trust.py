"""Trust in the run dir: torn checkpoints, DONE before the success row, killed attempts keep their work, one run at
a time, one-line disk errors, fingerprints that see code and named files (and not stop strings), --force from
nothing, and the last complete output kept until a new one is complete."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

import tests.stage_fixtures  # noqa: F401
from pipeline.run import artifacts, fingerprint, ledger, runner
from pipeline.run.recipe import load_recipe
from pipeline.training import common as training
from tests.helpers import QuietHandler, local_server

RUN_SCRIPT = """
import sys, tests.stage_fixtures
from pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def write(tmp_path, stages: str, name="r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\nstages:\n{stages}")
    return path


def cli(tmp_path, *args, wait=True):
    script = tmp_path / "go.py"
    script.write_text(RUN_SCRIPT)
    cmd = [sys.executable, str(script), *map(str, args)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    if not wait:
        return subprocess.Popen(cmd, env=env, cwd=os.getcwd(), start_new_session=True)
    return subprocess.run(cmd, env=env, cwd=os.getcwd(), capture_output=True, text=True, check=False)


# ---- 1. a kill during a checkpoint save ----

def _checkpoint(folder: Path, step: int, state: str | None = '{"global_step": 0}', weights=True) -> Path:
    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    if weights:
        (ckpt / "model.safetensors").write_bytes(b"w")
    if state is not None:
        (ckpt / "trainer_state.json").write_text(state)
    return ckpt


def test_resume_skips_a_torn_checkpoint_and_sets_it_aside(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    _checkpoint(folder, 4)
    _checkpoint(folder, 8, state=None)  # killed before trainer_state.json
    _checkpoint(folder, 12, state='{"global_st')  # killed while writing it
    args = type("Args", (), {"output_dir": str(folder)})()
    assert training.last_checkpoint(args) == str(folder / "checkpoint-4")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-4"]
    aside = sorted(p.name.split(".")[0] for p in (tmp_path / "incomplete_checkpoints").iterdir())
    assert aside == ["checkpoint-12", "checkpoint-8"]
    assert "is incomplete" in caplog.text


def test_sft_resumes_past_a_checkpoint_torn_by_a_kill(tmp_path):
    path = write(tmp_path, """
  problems: {kind: tasks, task: arithmetic, splits: {train: 32, test: 4}, params: {digits: 1, ops: '+'}}
  sft:
    model: {init: tiny, layers: 1, hidden: 32}
    data: {from: problems, split: train}
    trainer: {max_steps: 8, save_steps: 4, per_device_train_batch_size: 8, max_length: 30, logging_steps: 2,
              disable_tqdm: true}
""")
    runner.run(load_recipe(path))
    stage = tmp_path / "run" / "sft"
    # what a kill inside the step-8 save leaves: weights written, trainer_state.json not yet; no model, no DONE
    (stage / "checkpoints" / "checkpoint-8" / "trainer_state.json").unlink()
    (stage / "DONE").unlink()
    artifacts.move_replacing(stage / "model", tmp_path / "gone")
    result = runner.run(load_recipe(path))["sft"]
    assert result.metrics["resumed_from"] == "checkpoint-4" and result.metrics["global_step"] == 8
    assert [p.name.split(".")[0] for p in (stage / "incomplete_checkpoints").iterdir()] == ["checkpoint-8"]


def test_every_training_stage_resumes_through_the_one_helper():
    import inspect

    from pipeline.stages import distill, grpo, reward_model, sft

    for module in (sft, grpo, reward_model):
        source = inspect.getsource(module)
        assert "last_checkpoint(" in source and "get_last_checkpoint" not in source, module.__name__
    assert "train(trainer, args, ctx" in inspect.getsource(distill)  # distill trains through sft.train


# ---- 2, 3. the ledger: no success row before DONE; killed attempts keep their work ----

def test_a_kill_before_done_leaves_no_success_row(tmp_path, monkeypatch):
    path = write(tmp_path, "  a: {kind: work, steps: 2}\n")
    real = artifacts.atomic_write_json

    def killed_at_done(target, obj):
        if Path(target).name == artifacts.DONE:
            raise KeyboardInterrupt  # stands for the kill: nothing after this line runs
        return real(target, obj)

    monkeypatch.setattr(artifacts, "atomic_write_json", killed_at_done)
    with pytest.raises(KeyboardInterrupt):
        runner.run(load_recipe(path))
    statuses = [a["status"] for a in ledger.read_attempts(tmp_path / "run")]
    assert statuses == ["interrupted"]


def test_an_attempt_killed_after_done_is_closed_as_done(tmp_path):
    path = write(tmp_path, "  a: {kind: work, steps: 2}\n")
    runner.run(load_recipe(path))
    ledger_file = tmp_path / "run" / "ledger.jsonl"
    lines = ledger_file.read_text().splitlines()
    ledger_file.write_text("\n".join(lines[:-1]) + "\n")  # killed between DONE and the done row
    assert ledger.read_attempts(tmp_path / "run")[0]["status"] == "started"
    assert runner.plan(load_recipe(path))[0].action == "cached"
    runner.run(load_recipe(path))
    (row,) = ledger.read_attempts(tmp_path / "run")
    assert row["status"] == "done" and row["tokens_generated"] == 20


def test_the_started_row_is_written_before_devices_are_detected(tmp_path, monkeypatch):
    def torch_import_killed():
        raise RuntimeError("killed while importing torch")

    monkeypatch.setattr(ledger, "detect_devices", torch_import_killed)
    with pytest.raises(RuntimeError, match="killed"):
        ledger.new_attempt(tmp_path, "a", "work", 2.0, tmp_path / "a").begin()
    assert [a["status"] for a in ledger.read_attempts(tmp_path)] == ["started"]


def test_a_killed_attempt_keeps_the_work_it_reported(tmp_path):
    path = write(tmp_path, "  a: {kind: work, steps: 400, step_s: 0.05, tokens: 10}\n")
    proc = cli(tmp_path, "run", path, wait=False)
    progress = tmp_path / "run" / ".ledger" / "a.1.json"
    deadline = time.time() + 240  # a busy machine takes a while to import torch
    while time.time() < deadline and (artifacts.read_json(progress, {}) or {}).get("tokens_generated", 0) < 100:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    reported = artifacts.read_json(progress)["tokens_generated"]
    done = cli(tmp_path, "run", path, "stages.a.steps=1")
    assert done.returncode == 0, done.stderr
    killed, finished = ledger.read_attempts(tmp_path / "run")
    assert killed["status"] == "killed" and finished["status"] == "done"
    assert killed["tokens_generated"] >= reported >= 100 and killed["wall_s"] > 0.5 and killed["flops"] > 0
    assert not progress.exists()


# ---- 4. one run at a time ----

def test_a_second_run_on_a_busy_run_dir_exits_2_naming_the_holder(tmp_path):
    path = write(tmp_path, "  a: {kind: echo}\n")
    (tmp_path / "run").mkdir()
    with artifacts.run_lock(tmp_path / "run"):
        second = cli(tmp_path, "run", path)
        plan = cli(tmp_path, "plan", path)
    assert second.returncode == 2
    (line,) = [x for x in second.stderr.splitlines() if x.startswith("error:")]
    assert f"PID {os.getpid()}" in line and "in use by another reasonforge run" in line
    assert "Traceback" not in second.stderr
    assert plan.returncode == 0 and "will run" in plan.stdout  # plan needs no lock
    assert cli(tmp_path, "run", path).returncode == 0  # released with its holder


# ---- 5. disk full, read-only run dir; plan writes nothing ----

def test_disk_full_is_one_line_with_path_errno_and_fix(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    path = write(tmp_path, "  a: {kind: work, steps: 1}\n")
    real = artifacts.atomic_write_text

    def full(target, text):
        if Path(target).name == "metrics.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        return real(target, text)

    monkeypatch.setattr(artifacts, "atomic_write_text", full)
    assert main(["run", str(path)]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "metrics.json" in err[0] and "ENOSPC" in err[0] and "free some space" in err[0]


def test_a_read_only_run_dir_deep_in_a_chain_is_found():
    try:
        try:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), "runs/x/.lock")
        except OSError as inner:
            raise RuntimeError("stage 'sft' failed") from inner
    except RuntimeError as outer:
        line = artifacts.write_error(outer)
    assert line.startswith("cannot write runs/x/.lock: [Errno 30]") and "EROFS" in line and "writable" in line
    assert artifacts.write_error(RuntimeError("unrelated")) is None


def test_plan_writes_nothing(tmp_path):
    path = write(tmp_path, "  a: {kind: echo}\n")
    runner.run(load_recipe(path))
    (tmp_path / "run" / ".hash_cache.json").unlink()
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
    runner.plan(load_recipe(path))
    assert not (tmp_path / "run" / ".hash_cache.json").exists()
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()) == before


# ---- 6. fingerprints ----

def test_code_hash_follows_imports_not_the_whole_package():
    grpo = fingerprint.code_hashes("pipeline.stages.grpo")
    sft = fingerprint.code_hashes("pipeline.stages.sft")
    assert "rewards/accuracy.py" in grpo and "pipeline/training/common.py" in grpo and "pipeline/stages/grpo.py" in grpo
    # sft reaches the leaf modules it shares with the rewards (the think split, tokenizer loading), no reward
    leaves = {"rewards/think.py", "rewards/tokenizer.py"}
    assert {f for f in sft if f.startswith("rewards/")} == leaves
    assert "pipeline/stages/grpo.py" not in sft
    assert not any(f.endswith(".md") for f in grpo)


def test_a_code_change_reruns_the_stage_and_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "  a: {kind: echo}\n  b: {kind: work, data: {from: a}}\n")
    runner.run(load_recipe(path))
    real = fingerprint.code_hashes

    def edited(module):
        hashes = dict(real(module))
        if "tests/stage_fixtures.py" in hashes and module == "tests.stage_fixtures":
            hashes["pipeline/run/context.py"] = "0" * 16
        return hashes

    monkeypatch.setattr(fingerprint, "code_hashes", edited)
    decisions = runner.plan(load_recipe(path))
    assert [(d.action, d.reason) for d in decisions] == [("run", "code changed (pipeline/run/context.py)"),
                                                         ("run", "upstream will rerun (a)")]


def test_only_path_fields_are_hashed_not_stop_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"text": "x", "i": 0}\n')
    plain = {"stop": [".", "/"], "text": "in.jsonl", "data": {"path": "in.jsonl"}, "extra": {"prompt_file": "."}}
    assert fingerprint.local_paths(plain) == [".", "in.jsonl"]
    assert fingerprint.local_paths({"stop": ".", "extra": {"sep": "/", "note": "in.jsonl"}}) == []


def test_released_cards_and_named_benchmarks_are_inputs(tmp_path):
    from pipeline.data import benchmarks, released

    card = next(iter(released.card_names()))
    found = fingerprint.reference_inputs({"data": {"released": card}, "benchmarks": [{"benchmark": "gsm8k"}],
                                          "steps": [{"step": "decontaminate"}]})
    assert found[fingerprint._relative(released.card_paths()[card])]
    assert str(benchmarks.benchmark_file("gsm8k")) in found.values()
    assert str(benchmarks.benchmark_file("math500")) in found.values()  # decontaminate's default benchmarks


def test_hub_revisions_are_recorded_in_config_and_manifest(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    (cache / "models--org--tiny" / "refs").mkdir(parents=True)
    (cache / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    path = write(tmp_path, "  a: {kind: echo, extra: {model: org/tiny, stop: '.'}}\n")
    runner.run(load_recipe(path))
    config = json.loads((tmp_path / "run" / "a" / "config.json").read_text())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert config["hub"] == {"org/tiny": "abc123"} and config["inputs"] == {}
    assert manifest["stages"]["a"]["hub"] == {"org/tiny": "abc123"}


# ---- 7. --force from nothing; the last complete output survives a failed rerun ----

def test_force_starts_from_nothing(tmp_path):
    path = write(tmp_path, "  a: {kind: echo}\n")
    runner.run(load_recipe(path))
    leftover = tmp_path / "run" / "a" / "graded.jsonl"  # work a resumed attempt would reuse
    leftover.write_text("{}\n")
    runner.run(load_recipe(path), force=["a"])
    assert not leftover.exists() and (tmp_path / "run" / "a" / "DONE").exists()


def test_a_failed_rerun_keeps_the_last_complete_output(tmp_path):
    path = write(tmp_path, "  a: {kind: echo}\n  b: {kind: work, data: {from: a}}\n  c: {kind: echo, data: {from: b}}\n")
    runner.run(load_recipe(path))
    done = json.loads((tmp_path / "run" / "b" / "DONE").read_text())
    with pytest.raises(RuntimeError, match="asked to fail"):
        runner.run(load_recipe(path, ["stages.b.fail=true"]))
    assert json.loads((tmp_path / "run" / "b" / "DONE").read_text())["output_id"] == done["output_id"]
    assert (tmp_path / "run" / "b" / "dataset").is_dir()
    assert [d.action for d in runner.plan(load_recipe(path))] == ["cached", "cached", "cached"]


def test_a_rerun_killed_midway_gives_the_old_output_back_and_resumes_later(tmp_path):
    path = write(tmp_path, "  a: {kind: echo}\n  b: {kind: work, steps: 2}\n")
    runner.run(load_recipe(path))
    old_id = json.loads((tmp_path / "run" / "b" / "DONE").read_text())["output_id"]
    changed = load_recipe(path, ["stages.b.steps=3"])
    spec = changed.stage("b")
    ident = runner.stage_identity(changed, spec, fingerprint.ContentHasher())
    runner.prepare_stage_dir(changed.run_dir, "b", ident)  # the rerun began ...
    (tmp_path / "run" / "b" / "partial.txt").write_text("work")  # ... did some work, and was killed
    assert not (tmp_path / "run" / "b" / "DONE").exists()
    runner.run(load_recipe(path))  # the old config: the old output is back and cached
    assert json.loads((tmp_path / "run" / "b" / "DONE").read_text())["output_id"] == old_id
    runner.run(changed)  # the new config again: resumes from the kept partial work
    assert (tmp_path / "run" / "b" / "partial.txt").exists()
    assert not (tmp_path / "run" / ".previous" / "b").exists()


# ---- 8. one HTTP client for generation and judging: retries, Retry-After, the key never printed ----

class _Endpoint(QuietHandler):
    """429 (Retry-After 0.2) on each body's first request, then a grade; a body asking for ECHO gets its
    Authorization header back in an error body (status from the request)."""

    seen: ClassVar[dict] = {}

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = json.dumps(body)
        type(self).seen[text] = type(self).seen.get(text, 0) + 1
        if "ECHO" in text:
            status = 400 if "ECHO400" in text else 503
            self.reply(status, f"bad request; you sent Authorization: {self.headers.get('Authorization')}".encode())
        elif type(self).seen[text] == 1:
            self.reply(429, b"slow down", {"Retry-After": "0.2"})
        else:
            content = {"choices": [{"message": {"content": "Score: 8"}, "text": "ok", "finish_reason": "stop"}]}
            self.reply(200, json.dumps(content).encode())



@pytest.fixture
def endpoint(monkeypatch):
    _Endpoint.seen = {}
    with local_server(_Endpoint, monkeypatch) as url:
        yield url


def test_the_judge_retries_a_429_after_retry_after(endpoint, monkeypatch):
    from rewards.judge import judge_config, judge_scores

    monkeypatch.setenv("RF_KEY", "sk-judge-secret-42")
    config = judge_config({"base_url": endpoint, "model": "j", "api_key_env": "RF_KEY", "backoff_s": 0.01})
    start = time.time()
    assert judge_scores(config, ["q1", "q2"], ["a1", "a2"]) == [0.8, 0.8]
    assert time.time() - start >= 0.2 and set(_Endpoint.seen.values()) == {2}


def test_the_key_is_cut_from_every_message_even_when_the_server_echoes_it(endpoint, monkeypatch, caplog):
    from pipeline.generation import SamplingParams
    from pipeline.generation.openai_backend import OpenAIBackend, RequestFailed
    from rewards.judge import judge_config, judge_scores

    key = "sk-echoed-secret-7788"
    monkeypatch.setenv("RF_KEY", key)
    backend = OpenAIBackend("m", base_url=endpoint, chat=True, api_key_env="RF_KEY", max_retries=1, backoff_s=0.01)
    for prompt in ("ECHO400", "ECHO503"):
        with caplog.at_level(logging.WARNING), pytest.raises(RequestFailed) as failure:
            backend.generate([[{"role": "user", "content": prompt}]], SamplingParams())
        assert "Authorization: Bearer ***" in str(failure.value) and key not in str(failure.value)
    config = judge_config({"base_url": endpoint, "model": "j", "api_key_env": "RF_KEY", "max_retries": 1,
                           "backoff_s": 0.01})
    with caplog.at_level(logging.WARNING):
        assert judge_scores(config, ["q"], ["ECHO503"]) == [None]
    assert "retry 1/1" in caplog.text and "giving up" in caplog.text and key not in caplog.text


# ---- 9. a missed claim fails the run ----

def _fake_evaluation(cfg, ctx):
    from pipeline.run.context import StageResult

    return StageResult(metrics={"a": {"bench": {"pass@1": 0.5}}, "b": {"bench": {"pass@1": 0.38}}})


def test_a_missed_claim_fails_the_report_stage_naming_it(tmp_path):
    from dataclasses import dataclass

    from pipeline.run.registry import STAGES, register_stage

    @dataclass
    class FakeEvaluation:
        text: str = ""

    if "fake_evaluation" not in STAGES:
        register_stage("fake_evaluation", FakeEvaluation, help="test: fixed evaluation metrics")(_fake_evaluation)
    path = write(tmp_path, """  ev: {kind: fake_evaluation}
  summary:
    kind: report
    evaluation: {from: ev}
    fail_on_miss: true
    checks: [{claim: "a beats b by 10", model: a, at_least: b, plus: 0.10},
             {claim: "a beats b by 20", model: a, at_least: b, plus: 0.20}]
""")
    with pytest.raises(RuntimeError, match="claims not met: a beats b by 20") as failure:
        runner.run(load_recipe(path))
    assert "by 10" not in str(failure.value) and not (tmp_path / "run" / "summary" / "DONE").exists()
    assert "NOT MET: a beats b by 20" in (tmp_path / "run" / "summary" / "summary.md").read_text()
    runner.run(load_recipe(path, ["stages.summary.fail_on_miss=false"]))  # without it the run only reports


def test_the_quickstart_fails_when_a_claim_is_missed():
    recipe = load_recipe("recipes/quickstart.yaml")
    summary = [s for s in recipe.stages if s.kind == "report"]
    assert summary and all(s.config.fail_on_miss for s in summary)
