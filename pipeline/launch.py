"""Run one stage under `accelerate launch` as its own process group, and treat it like an in-process stage.

A stage with a `launch:` block (or `runner.run(..., launch=...)`) is not run in the runner's process. The parent
writes the resolved recipe to a file, starts `accelerate launch ... -m pipeline.stage_worker RECIPE STAGE` in a new
session (so Ctrl-C or a failure kills the whole group) and waits. Every rank runs the stage function; only rank 0
writes artifacts, the ledger row (counting every process's device time) and DONE, and no rank exits before DONE is
written (pipeline/stage_worker.py). The parent then reads DONE exactly as for a single process.

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

from pipeline import artifacts

LAUNCH_KEYS = {"config", "num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port",
               "extra_args"}
INT_KEYS = ("num_processes", "num_machines", "machine_rank", "main_process_port")
# How long a node other than node 0 waits for DONE to show up on a shared filesystem (NFS caches lookups).
DONE_WAIT_S = 120.0


def machine_rank(launch: dict) -> int:
    return int(launch.get("machine_rank") or 0)


def _config_values(launch: dict) -> dict:
    """The accelerate config file's top-level values ({} without one)."""
    config = launch.get("config")
    return (yaml.safe_load(Path(config).read_text()) or {}) if config else {}


def launch_command(launch: dict, recipe_file: Path, stage: str) -> list[str]:
    """The `accelerate launch` command line for one stage; launch: values override the config file's."""
    _check_keys(launch)
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
    return cmd + ["-m", "pipeline.stage_worker", str(recipe_file), stage]


def launch_stage(recipe, spec, launch: dict):
    """Run `spec` under accelerate launch and return its StageResult; RuntimeError when it fails."""
    from pipeline.runner import load_result

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
    return load_result(recipe, spec.name)


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


def check_launch(launch: dict) -> None:
    """Validate a stage's launch: block at recipe load time: known keys and types, and a config file accelerate
    can read whose settings let the stage save a model that loads with from_pretrained."""
    _check_keys(launch)
    for key in INT_KEYS:
        value = launch.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0
                                  or (value == 0 and key in ("num_processes", "num_machines"))):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    extra = launch.get("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, (str, int, float)) for a in extra):
        raise ValueError(f"extra_args must be a list of command-line words, e.g. [--mixed_precision, 'no'], "
                         f"got {extra!r}")
    config = launch.get("config")
    values = check_accelerate_config(config) if config is not None else {}
    machines = launch.get("num_machines") or values.get("num_machines") or 1
    if machine_rank(launch) >= machines:
        raise ValueError(f"machine_rank {machine_rank(launch)} is out of range for num_machines {machines}; "
                         f"ranks run 0..{machines - 1}")
    if machines > 1 and not (launch.get("main_process_ip") or values.get("main_process_ip")):
        raise ValueError(f"num_machines is {machines} but no main_process_ip says where rank 0 runs; set it "
                         "(scripts/slurm_stage.sh does)")


def _check_keys(launch: dict) -> None:
    import difflib

    unknown = set(launch) - LAUNCH_KEYS
    if unknown:
        key = min(unknown, key=str)
        close = difflib.get_close_matches(str(key), sorted(LAUNCH_KEYS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(sorted(LAUNCH_KEYS))}"
        raise ValueError(f"unknown key '{key}'; {hint}")


def check_accelerate_config(config) -> dict:
    """The config file's values after accelerate's own parser accepted it; ValueError with the fix otherwise."""
    if not isinstance(config, str) or not Path(config).is_file():
        raise ValueError(f"config file '{config}' not found (paths are relative to where you run reasonforge); "
                         f"use one of recipes/accelerate/{{ddp,zero2,zero3,fsdp}}.yaml")
    from accelerate.commands.config.config_args import ClusterConfig

    try:
        ClusterConfig.from_yaml_file(config)
        values = yaml.safe_load(Path(config).read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"accelerate cannot read '{config}': invalid YAML{where}") from None
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ValueError(f"accelerate cannot read '{config}': {str(e).splitlines()[0]}") from None
    _check_nested_keys(config, values)
    _check_final_save(config, values)
    return values


def _check_nested_keys(config: str, values: dict) -> None:
    """accelerate copies deepspeed_config/fsdp_config entries onto its launch arguments without checking them, so
    a typo (zero_stag: 3) would silently train with the default; check them against `accelerate launch`'s flags."""
    import difflib

    from accelerate.commands.launch import launch_command_parser

    flags = {action.dest for action in launch_command_parser()._actions}
    for section, prefix in (("deepspeed_config", ""), ("fsdp_config", "fsdp_")):
        for key in values.get(section) or {}:
            name = key if key.startswith(prefix) else prefix + key
            if name not in flags:
                close = difflib.get_close_matches(name, sorted(f for f in flags if f.startswith(prefix)))
                hint = f"did you mean '{close[0]}'?" if close else "see `accelerate launch --help`"
                raise ValueError(f"'{config}': {section}.{key} is not an accelerate setting; {hint}")


def _check_final_save(config: str, values: dict) -> None:
    """Sharded training must gather the weights at the end, or model/ would not load with from_pretrained. A
    deepspeed_config_file (DeepSpeed's own JSON) is not read here; training.save_trained_model still refuses to
    finish a stage whose save wrote no weights."""
    ds = values.get("deepspeed_config") or {}
    if values.get("distributed_type") == "DEEPSPEED" and str(ds.get("zero_stage")) == "3" \
            and not ds.get("deepspeed_config_file") and not ds.get("zero3_save_16bit_model"):
        raise ValueError(f"'{config}': ZeRO-3 without zero3_save_16bit_model: true saves no loadable weights; "
                         "set deepspeed_config.zero3_save_16bit_model: true")
    fsdp = values.get("fsdp_config") or {}
    version = int(fsdp.get("fsdp_version", fsdp.get("version", 1)))
    default = "FULL_STATE_DICT" if version == 1 else "SHARDED_STATE_DICT"  # accelerate's defaults per version
    state_dict = fsdp.get("fsdp_state_dict_type", fsdp.get("state_dict_type")) or default
    if values.get("distributed_type") == "FSDP" and state_dict != "FULL_STATE_DICT":
        raise ValueError(f"'{config}': fsdp_state_dict_type {state_dict} saves a sharded model that does not load "
                         "with from_pretrained; use FULL_STATE_DICT")
