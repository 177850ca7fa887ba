"""chaos: kill -9 a real `reasonforge run` at random moments, resume it each time, and check that nothing is lost,
duplicated or stuck, and that the ledger still counts every token computed.

A tiny offline recipe (sft -> generate -> curate -> grpo on procedural arithmetic, tiny random-init models) runs
once uninterrupted (the baseline), then again in a fresh run dir under chaos: each `python -m pipeline run` is a
subprocess in its own session; the script waits until the target stage is running (its ledger progress file
exists) and kills the whole process group with SIGKILL after a random delay within that stage's baseline time,
or, for every other sft kill (the first one included), the moment a checkpoint folder appears without its trainer_state.json (inside a
checkpoint save). Then it starts the run again; a stage that was killed `kills` times is left to finish.

Printed (one JSON object, last line):
    kills               per stage running at the moment of the kill, and `in_checkpoint_save`
    lost                generated samples missing from the final dataset + training steps short of max_steps +
                        curate input rows missing + stages without DONE at the end
    duplicated          (id, sample_index) keys written more than once in the generate shards
    stuck               runs that exited with an error without being killed (a resume that cannot resume)
    open_attempts       ledger attempts left without a final row after the last run
    ledger_tokens_ratio tokens (trained + generated + prompt) in the chaos run's ledger / the baseline's; >= 1.0
                        means no killed attempt's work went uncounted (work redone after a kill counts again)

    python benchmarks/chaos.py --quick       # 1 kill per stage; 508 s measured on 2 cores under load 10
    python benchmarks/chaos.py               # 20 kills per stage
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STAGES = ("sft", "gen", "curate", "grpo")
RECIPE = """# chaos benchmark recipe: tiny, offline, CPU
name: chaos
seed: 0
torch_threads: 1
run_dir: {run_dir}
stages:
  problems: {{kind: tasks, task: arithmetic, splits: {{train: {rows}, test: 8}}, params: {{digits: 1, ops: '+'}}}}
  sft:
    model: {{init: tiny, layers: 1, hidden: 32, heads: 2, kv_heads: 1}}
    data: {{from: problems, split: train}}
    trainer: {{max_steps: {sft_steps}, save_steps: 2, save_total_limit: 2, per_device_train_batch_size: 8,
              max_length: 48, logging_steps: 1, learning_rate: 1.0e-3, disable_tqdm: true}}
  gen:
    kind: generate
    model: {{from: sft}}
    data: {{from: problems, split: train}}
    prompt_template: "{{problem}}"
    n: 2
    temperature: 1.0
    max_new_tokens: 16
    batch_size: 4
  curate: {{kind: curate, data: {{from: gen}}, steps: [{{step: filter}}, {{step: verify}}], allow_empty: true}}
  grpo:
    kind: grpo
    model: {{from: sft}}
    data: {{from: problems, split: train}}
    rewards: [{{name: accuracy}}]
    trainer: {{max_steps: {grpo_steps}, save_steps: 2, num_generations: 4, per_device_train_batch_size: 8,
              max_completion_length: 16, logging_steps: 1, learning_rate: 1.0e-3, temperature: 1.0}}
"""
SIZES = {"quick": {"kills": 1, "rows": 32, "sft_steps": 8, "grpo_steps": 4},
         "full": {"kills": 20, "rows": 96, "sft_steps": 60, "grpo_steps": 30}}


def write_recipe(folder: Path, run_dir: Path, size: dict) -> Path:
    path = folder / f"{run_dir.name}.yaml"
    path.write_text(RECIPE.format(run_dir=run_dir, **size))
    return path


def snapshot_code(folder: Path) -> Path:
    """A copy of pipeline/ and rewards/ for the runs to import: the fingerprint hashes the code a stage reaches,
    so an edit to the working tree during the benchmark would otherwise restart stages from nothing."""
    import shutil

    code = folder / "code"
    for package in ("pipeline", "rewards"):
        if not (code / package).exists():
            shutil.copytree(REPO / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    return code


def start_run(recipe: Path, log, code: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(code)}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(recipe)], cwd=code, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def running_stages(run_dir: Path, since: float) -> list[str]:
    """Stages with an attempt in progress in the run started at `since`: their ledger progress file
    (pipeline/run/ledger.py, refreshed every 2 s) was written since then; a killed run's file is older."""
    folder = run_dir / ".ledger"
    found = set()
    for p in folder.glob("*.json") if folder.is_dir() else []:
        try:
            if p.stat().st_mtime >= since:
                found.add(p.name.split(".")[0])
        except FileNotFoundError:
            continue
    return sorted(found)


def done(run_dir: Path, stage: str) -> bool:
    return (run_dir / stage / "DONE").exists()


def torn_checkpoint(run_dir: Path) -> bool:
    """A checkpoint folder being written: it exists, its trainer_state.json (written last) does not yet."""
    folder = run_dir / "sft" / "checkpoints"
    try:
        return any(e.is_dir() and e.name.startswith("checkpoint-") and not os.path.exists(
            os.path.join(e.path, "trainer_state.json")) for e in os.scandir(folder))
    except FileNotFoundError:
        return False


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def wait_for(condition, proc: subprocess.Popen, timeout: float, poll: float = 0.05) -> bool:
    """True once `condition()` holds; False when the process exited or the time ran out first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def stage_seconds(run_dir: Path) -> dict[str, float]:
    from pipeline.run import ledger

    return {a["stage"]: a["wall_s"] for a in ledger.read_attempts(run_dir) if a["status"] == "done"}


def chaos_run(recipe: Path, run_dir: Path, kills_per_stage: int, seconds: dict, rng: random.Random, log,
              code: Path) -> dict:
    """Kill and resume until every stage has DONE; returns kills per stage, stuck runs and runs started."""
    kills, stuck, runs, save_kills = collections.Counter(), 0, 0, 0
    while True:
        target = next((s for s in STAGES if kills[s] < kills_per_stage and not done(run_dir, s)), None)
        since = time.time()
        proc = start_run(recipe, log, code)
        runs += 1
        if target is None:
            if proc.wait() != 0:
                stuck += 1
                if stuck > 3:
                    break
                continue
            break
        if not wait_for(lambda t=target, s=since: t in running_stages(run_dir, s) or done(run_dir, t), proc, 900,
                        poll=0.005):  # curate runs for a fraction of a second at this size
            stuck += proc.returncode not in (None, 0)
            if proc.returncode == 0:
                continue
            kill_group(proc)
            if stuck > 3:
                break
            continue
        in_save = target == "sft" and kills["sft"] % 2 == 0
        budget = seconds.get(target, 5.0)
        if in_save:
            caught = wait_for(lambda: torn_checkpoint(run_dir), proc, 4 * budget + 60, poll=0.001)
            save_kills += caught and torn_checkpoint(run_dir)
        else:
            wait_for(lambda: False, proc, rng.uniform(0.0, budget))
        if proc.poll() is not None:  # finished (or failed) before the kill
            stuck += proc.returncode != 0
            continue
        at = running_stages(run_dir, since) or ["between stages"]
        kill_group(proc)
        for stage in at:
            kills[stage] += 1
    return {"kills": dict(kills), "in_checkpoint_save": save_kills, "stuck": stuck, "runs": runs}


def audit(run_dir: Path, baseline_dir: Path, size: dict) -> dict:
    """lost, duplicated, open attempts and ledger tokens of the chaos run against the baseline."""
    import datasets

    from pipeline.run import ledger
    from pipeline.run.shards import iter_rows, part_paths

    lost = sum(not done(run_dir, s) for s in ("problems", *STAGES))
    raw = collections.Counter((r["id"], r["sample_index"]) for p in part_paths(run_dir / "gen" / "shards")
                              for r in iter_rows(p))
    duplicated = sum(n - 1 for n in raw.values())
    expected = {(r["id"], r["sample_index"]) for r in datasets.load_from_disk(str(baseline_dir / "gen" / "dataset"))}
    if done(run_dir, "gen"):
        final = {(r["id"], r["sample_index"]) for r in datasets.load_from_disk(str(run_dir / "gen" / "dataset"))}
        lost += len(expected - final)
    for stage, steps in (("sft", size["sft_steps"]), ("grpo", size["grpo_steps"])):
        metrics = json.loads((run_dir / stage / "metrics.json").read_text()) if done(run_dir, stage) else {}
        lost += max(0, steps - int(metrics.get("global_step", 0)))
    if done(run_dir, "curate"):
        funnel = json.loads((run_dir / "curate" / "metrics.json").read_text())
        lost += max(0, len(expected) - int(funnel.get("rows_in", len(expected))))

    def tokens(folder: Path) -> int:
        return sum(int(a.get(k, 0) or 0) for a in ledger.read_attempts(folder)
                   for k in ("tokens_trained", "tokens_generated", "tokens_prompt"))

    open_attempts = sum(a["status"] in ("started", "running") for a in ledger.read_attempts(run_dir))
    base = tokens(baseline_dir)
    return {"lost": lost, "duplicated": duplicated, "open_attempts": open_attempts,
            "ledger_tokens": tokens(run_dir), "baseline_tokens": base,
            "ledger_tokens_ratio": round(tokens(run_dir) / base, 4) if base else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 kill per stage on a smaller recipe")
    parser.add_argument("--kills", type=int, help="kills per stage (default: 1 quick, 20 full)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the run dirs and logs in this folder")
    args = parser.parse_args(argv)
    size = dict(SIZES["quick" if args.quick else "full"])
    size["kills"] = args.kills or size["kills"]
    started = time.time()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="chaos-"))
    folder.mkdir(parents=True, exist_ok=True)
    code = snapshot_code(folder)
    with open(folder / "runs.log", "ab") as log:
        baseline_dir = folder / "baseline"
        exit_code = start_run(write_recipe(folder, baseline_dir, size), log, code).wait()
        if exit_code != 0:
            print(json.dumps({"benchmark": "chaos", "error": f"baseline run failed (exit {exit_code}); see "
                                                             f"{folder / 'runs.log'}"}))
            return 1
        seconds = stage_seconds(baseline_dir)
        chaos_dir = folder / "chaos"
        result = chaos_run(write_recipe(folder, chaos_dir, size), chaos_dir, size["kills"], seconds,
                           random.Random(args.seed), log, code)
    figures = audit(chaos_dir, baseline_dir, size)
    out = {"benchmark": "chaos", "size": "quick" if args.quick else "full", **result, **figures,
           "baseline_stage_seconds": seconds, "seconds": round(time.time() - started, 1), "run_dirs": str(folder)}
    out["met"] = (out["lost"] == 0 and out["duplicated"] == 0 and out["stuck"] == 0 and out["open_attempts"] == 0
                  and (out["ledger_tokens_ratio"] or 0) >= 1.0)
    print(json.dumps(out))
    return 0 if out["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
