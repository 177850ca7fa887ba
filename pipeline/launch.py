"""Run one stage under `accelerate launch` as its own process group, and treat it like an in-process stage.

The parent writes the resolved recipe beside the stage, starts `accelerate launch ... -m pipeline.stage_worker`,
and waits. Every rank runs the stage function; only rank 0 writes artifacts, the ledger row and DONE, and its
ledger row counts every process's device time. The parent then reads DONE exactly as for a single process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import artifacts

LAUNCH_KEYS = {"config", "num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port",
               "extra_args"}


def launch_command(launch: dict, recipe_file: Path, stage: str) -> list[str]:
    unknown = set(launch) - LAUNCH_KEYS
    if unknown:
        raise ValueError(f"launch: unknown key '{sorted(unknown)[0]}'; valid: {', '.join(sorted(LAUNCH_KEYS))}")
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
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
    cmd += list(launch.get("extra_args", []))
    return cmd + ["-m", "pipeline.stage_worker", str(recipe_file), stage]


def launch_stage(recipe, spec, launch: dict):
    from pipeline.runner import load_result

    stage_dir = recipe.run_dir / spec.name
    recipe_file = artifacts.atomic_write_text(stage_dir / "launch" / "recipe.yaml",
                                              yaml.safe_dump({**recipe.raw, "run_dir": str(recipe.run_dir)}))
    cmd = launch_command(launch, recipe_file, spec.name)
    env = {**os.environ, "REASONFORGE_LAUNCHED": "1"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # its own process group, killed as one
    try:
        code = proc.wait()
    except BaseException:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    if code != 0 or not (stage_dir / artifacts.DONE).exists():
        raise RuntimeError(f"stage '{spec.name}' failed under accelerate launch (exit {code}); "
                           f"see {stage_dir / 'log.txt'} and the output above")
    return load_result(recipe, spec.name)


def check_launch(launch: dict) -> None:
    """Validate a stage's launch: block at recipe load time: known keys, and a config file accelerate can read."""
    unknown = set(launch) - LAUNCH_KEYS
    if unknown:
        raise ValueError(f"unknown key '{sorted(unknown)[0]}'; valid: {', '.join(sorted(LAUNCH_KEYS))}")
    n = launch.get("num_processes")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"num_processes must be a positive integer, got {n!r}")
    config = launch.get("config")
    if config is None:
        return
    if not Path(config).is_file():
        raise ValueError(f"config file '{config}' not found; ship one like recipes/accelerate/zero3.yaml")
    from accelerate.commands.config.config_args import ClusterConfig

    try:
        ClusterConfig.from_yaml_file(str(config))
    except (ValueError, TypeError, yaml.YAMLError) as e:
        raise ValueError(f"accelerate cannot read '{config}': {str(e).splitlines()[0]}") from None
