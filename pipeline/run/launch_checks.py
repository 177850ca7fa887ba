"""Checks of a stage's `launch:` block at recipe load time (pipeline/run/launch.py runs it): known keys and types, and
an accelerate config file whose settings let the stage save a model that loads with from_pretrained."""

from __future__ import annotations

from pathlib import Path

import yaml

LAUNCH_KEYS = {"config", "num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port",
               "extra_args"}
INT_KEYS = ("num_processes", "num_machines", "machine_rank", "main_process_port")

def machine_rank(launch: dict) -> int:
    return int(launch.get("machine_rank") or 0)


def check_launch(launch: dict) -> None:
    """Validate a stage's launch: block at recipe load time: known keys and types, and a config file accelerate
    can read whose settings let the stage save a model that loads with from_pretrained."""
    check_keys(launch)
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


def check_keys(launch: dict) -> None:
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
