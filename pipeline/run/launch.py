"""Run one stage under `accelerate launch` as its own process group, and treat it like an in-process stage.

A stage with a `launch:` block (or `runner.run(..., launch=...)`) is not run in the runner's process. The parent
writes the resolved recipe to a file, starts `accelerate launch ... -m pipeline.run.stage_worker RECIPE STAGE` in a new
session (so Ctrl-C or a failure kills the whole group) and waits. Every rank runs the stage function; only rank 0
writes artifacts, the ledger row (counting every process's device time) and DONE, and no rank exits before DONE is
written (pipeline/run/stage_worker.py). The parent then reads DONE exactly as for a single process.

    launch: {config: recipes/accelerate/zero3.yaml, num_processes: 8}          # one node, 8 GPUs
    launch: {num_processes: 2}                                                 # plain DDP (gloo on a CPU box)
    launch: {config: ..., num_processes: 16, num_machines: 2, machine_rank: 0, main_process_ip: node0}

Multi-node: every node runs `reasonforge run --only STAGE` with its own machine_rank (scripts/slurm_stage.sh).
Node 0 owns the stage directory (the runner prepares it, rank 0 writes into it); the other nodes do not touch it:
they keep their copy of the recipe under `<run_dir>/.launch/` and wait for node 0's DONE on the shared filesystem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.run import artifacts
from pipeline.run.launch_checks import check_keys, machine_rank

# How long a node other than node 0 waits for DONE to show up on a shared filesystem (NFS caches lookups).
DONE_WAIT_S = 120.0


def _config_values(launch: dict) -> dict:
    """The accelerate config file's top-level values ({} without one)."""
    config = launch.get("config")
    return (yaml.safe_load(Path(config).read_text()) or {}) if config else {}


def launch_command(launch: dict, recipe_file: Path, stage: str) -> list[str]:
    """The `accelerate launch` command line for one stage; launch: values override the config file's."""
    check_keys(launch)  # launch_command is also called directly (scripts, tests)
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    cmd = [accelerate, "launch"] if accelerate else [sys.executable, "-m", "accelerate.commands.launch"]
    if launch.get("config"):
        cmd += ["--config_file", str(launch["config"])]
    else:
        # Without a config file: plain data parallel. On a machine with no GPU accelerate's multi-GPU launcher
        # still starts one process per rank through torchrun, and the stages' use_cpu=True then picks gloo.
        cmd += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    for key in ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port"):
        if launch.get(key) is not None:
            cmd += [f"--{key}", str(launch[key])]
    config = _config_values(launch)
    single_node = int(launch.get("num_machines") or config.get("num_machines") or 1) <= 1
    if single_node and launch.get("main_process_port") is None and config.get("main_process_port") is None:
        # Port 0: accelerate picks a free one, so two single-node launches on one machine do not collide on 29500.
        cmd += ["--main_process_port", "0"]
    cmd += [str(a) for a in launch.get("extra_args", [])]
    return cmd + ["-m", "pipeline.run.stage_worker", str(recipe_file), stage]


def launch_stage(recipe, spec, launch: dict) -> None:
    """Run `spec` under accelerate launch until its DONE is written; RuntimeError when it fails."""
    stage_dir = recipe.run_dir / spec.name
    rank = machine_rank(launch)
    # Node 0's copy sits beside the stage's artifacts; the others' outside the stage dir, which node 0 may wipe.
    recipe_file = stage_dir / "launch" / "recipe.yaml" if rank == 0 else \
        recipe.run_dir / ".launch" / f"{spec.name}.machine{rank}.yaml"
    artifacts.atomic_write_text(recipe_file, recipe_text(recipe))
    cmd = launch_command(launch, recipe_file, spec.name)
    env = {**os.environ, "REASONFORGE_LAUNCHED": "1"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # its own process group, killed as one
    try:
        code = proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # the group may have exited already
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    if code != 0:
        raise RuntimeError(f"stage '{spec.name}' failed under accelerate launch (exit {code}); "
                           f"see {stage_dir / 'log.txt'} and the output above")
    if not wait_for_done(stage_dir, 0.0 if rank == 0 else DONE_WAIT_S):
        raise RuntimeError(f"stage '{spec.name}': every process exited cleanly but {stage_dir / artifacts.DONE} "
                           f"is missing; check that all nodes share the run directory")


def recipe_text(recipe) -> str:
    """The resolved recipe (overrides applied, run_dir made explicit) as YAML the workers load. Key order is kept:
    stages run in the order they are written, and a `from:` may only name an earlier stage."""
    return yaml.safe_dump({**recipe.raw, "run_dir": str(recipe.run_dir)}, sort_keys=False)


def wait_for_done(stage_dir: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not (stage_dir / artifacts.DONE).exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)
    return True
