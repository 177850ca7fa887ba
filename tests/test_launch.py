"""Stages under `accelerate launch`: 2 CPU processes (gloo) through the runner, a two-node launch on localhost,
DeepSpeed when installed, the launch command line, and launch: errors as one-line recipe errors."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tests.stage_fixtures  # noqa: F401  (the echo stage kind)
from pipeline.cli import main
from pipeline.run import ledger, runner
from pipeline.run.launch import launch_command
from pipeline.run.recipe import load_recipe
from pipeline.training import models

# The data stage is named to sort after "sft": the recipe the workers load must keep the written stage order.
PROBLEMS = "tasks: {kind: tasks, task: arithmetic, splits: {train: 64, test: 8}, params: {digits: 1, ops: '+'}}"
STEPS, BATCH = 20, 8
TINY = {"layers": 1, "hidden": 32, "heads": 2, "kv_heads": 1}
SFT = f"""
sft:
  model: {{init: tiny, layers: 1, hidden: 32, heads: 2, kv_heads: 1}}
  data: {{from: tasks, split: train}}
  launch: {{LAUNCH}}
  trainer: {{max_steps: {STEPS}, learning_rate: 3.0e-3, per_device_train_batch_size: {BATCH}, logging_steps: 2,
            save_steps: 1000, disable_tqdm: true}}
"""


@pytest.fixture(autouse=True)
def one_thread_children(monkeypatch):
    # Each launched process is a tiny model on 2 shared cores: one thread each, or they spin against each other.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def write_recipe(tmp_path: Path, launch: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    stages = PROBLEMS + SFT.replace("{LAUNCH}", launch)
    path.write_text(f"name: t\nseed: 0\nrun_dir: {tmp_path / 'run'}\nstages:\n" + textwrap.indent(stages, "  "))
    return path


def rendered_lengths(problems_dir: str) -> list[int]:
    """Token count of every training chat as the sft stage renders it (the tiny char tokenizer)."""
    import datasets

    from pipeline.training.sft_data import render_dataset, token_lengths

    train = datasets.load_from_disk(problems_dir)["train"]
    return token_lengths(render_dataset(train), models.build_char_tokenizer())


def check_trained_once_by_both(run_dir: Path, results: dict, processes: int = 2) -> None:
    """One model/ that reloads, loss down, exactly one done ledger row counting every process and its tokens."""
    from transformers import AutoModelForCausalLM

    stage_dir = run_dir / "sft"
    assert sorted(p.name for p in stage_dir.iterdir() if "model" in p.name) == ["model"]  # no temporaries left
    trained = AutoModelForCausalLM.from_pretrained(results["sft"].model).state_dict()
    initial = models.build_tiny_model(TINY, models.build_char_tokenizer(), seed=0).state_dict()  # the recipe's seed
    assert trained.keys() == initial.keys() and any(not trained[k].equal(initial[k]) for k in trained)
    losses = [v for _, v in json.loads((stage_dir / "curves.json").read_text())["loss"]]
    assert len(losses) == STEPS // 2 and losses[-1] < losses[0] - 0.5, losses
    rows = [a for a in ledger.read_attempts(run_dir) if a["stage"] == "sft"]
    assert [r["status"] for r in rows] == ["done"]
    assert rows[0]["processes"] == processes and rows[0]["device_count"] == processes
    # Every step trains processes x BATCH examples: the tokens counted are the global ones, not rank 0's share.
    lengths = rendered_lengths(results["tasks"].dataset)
    per_step = processes * BATCH
    assert STEPS * per_step * min(lengths) <= rows[0]["tokens_trained"] <= STEPS * per_step * max(lengths)


@pytest.mark.slow
def test_sft_on_two_cpu_processes_through_the_runner(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, "{num_processes: 2}"))
    results = runner.run(recipe)
    check_trained_once_by_both(recipe.run_dir, results)
    assert (recipe.run_dir / "sft" / "launch" / "recipe.yaml").exists()
    assert all(d.action == "cached" for d in runner.plan(recipe))  # DONE written by rank 0 is a normal DONE


@pytest.mark.slow
def test_a_failing_launched_stage_fails_the_run_once_without_done(tmp_path):
    path = write_recipe(tmp_path, "{num_processes: 2}")
    path.write_text(path.read_text().replace("{from: tasks, split: train}", "{from: tasks, split: nope}"))
    recipe = load_recipe(path)
    with pytest.raises(RuntimeError, match="stage 'sft' failed under accelerate launch"):
        runner.run(recipe)
    assert not (recipe.run_dir / "sft" / "DONE").exists()
    rows = [a for a in ledger.read_attempts(recipe.run_dir) if a["stage"] == "sft"]
    assert [(r["status"], r["processes"]) for r in rows] == [("failed", 2)]  # rank 0's row only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_node_launch_on_localhost_writes_done_once(tmp_path):
    """Two `reasonforge run --only sft` parents, machine_rank 0 and 1, one process each, as scripts/slurm_stage.sh
    starts them on two nodes: node 1 must leave the stage dir to node 0 and both must see DONE."""
    launch = f"{{num_processes: 2, num_machines: 2, main_process_ip: 127.0.0.1, main_process_port: {free_port()}}}"
    path = write_recipe(tmp_path, launch)
    runner.run(load_recipe(path), only="tasks")
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(path),
                               f"stages.sft.launch.machine_rank={rank}", "--only", "sft"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
             for rank in (1, 0)]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    recipe = load_recipe(path)
    results = {name: runner.load_result(recipe, name) for name in ("tasks", "sft")}
    check_trained_once_by_both(recipe.run_dir, results)
    assert (recipe.run_dir / ".launch" / "sft.machine1.yaml").exists()


def deepspeed_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        return "deepspeed is not installed (optional extra: pip install 'reasonforge[deepspeed]')"
    return None


ZERO3_PARTITIONED = {  # stage3_param_persistence_threshold 0: tiny params are sharded too, so the save must gather
    "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0,
                          "stage3_gather_16bit_weights_on_model_save": True},
    "bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto", "train_batch_size": "auto"}


@pytest.mark.slow
@pytest.mark.skipif(deepspeed_missing() is not None, reason=str(deepspeed_missing()))
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_deepspeed_on_cpu(tmp_path, zero):
    """The shipped zero2.yaml on 2 CPU processes (gloo; its bf16 switched off, as TRL runs fp32 on CPU), and ZeRO-3
    with every parameter sharded: the saved model must hold the gathered weights, not empty shards."""
    if zero == "zero2":
        launch = '{config: recipes/accelerate/zero2.yaml, num_processes: 2, extra_args: [--mixed_precision, "no"]}'
    else:
        (tmp_path / "ds.json").write_text(json.dumps(ZERO3_PARTITIONED))
        (tmp_path / "zero3.yaml").write_text(textwrap.dedent(f"""\
            compute_environment: LOCAL_MACHINE
            distributed_type: DEEPSPEED
            deepspeed_config: {{deepspeed_config_file: {tmp_path / 'ds.json'}, zero3_init_flag: false}}
            num_machines: 1
            num_processes: 2
            """))
        launch = f"{{config: {tmp_path / 'zero3.yaml'}}}"
    recipe = load_recipe(write_recipe(tmp_path, launch))
    results = runner.run(recipe)
    check_trained_once_by_both(recipe.run_dir, results)
    from safetensors.torch import load_file

    weights = load_file(Path(results["sft"].model) / "model.safetensors")
    assert min(t.numel() for t in weights.values()) > 1  # a ZeRO-3 shard left ungathered is an empty tensor


def test_launch_command_with_config_file_and_multinode_fields(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    launch = {"config": "recipes/accelerate/zero3.yaml", "num_processes": 16, "num_machines": 2, "machine_rank": 1,
              "main_process_ip": "10.0.0.1", "main_process_port": 29501, "extra_args": ["--max_restarts", "0"]}
    cmd = launch_command(launch, Path("runs/x/sft/launch/recipe.yaml"), "sft")
    assert cmd[-4:] == ["-m", "pipeline.run.stage_worker", "runs/x/sft/launch/recipe.yaml", "sft"]
    assert "--multi_gpu" not in cmd and cmd.count("--main_process_port") == 1
    start = cmd.index("launch") + 1 if "launch" in cmd else cmd.index("accelerate.commands.launch") + 1
    args = launch_command_parser().parse_args(cmd[start:])  # accelerate's own parser accepts every flag we pass
    assert args.config_file == "recipes/accelerate/zero3.yaml" and args.num_processes == 16
    assert (args.num_machines, args.machine_rank) == (2, 1)
    assert (args.main_process_ip, args.main_process_port, args.max_restarts) == ("10.0.0.1", 29501, 0)
    assert args.module and args.training_script == "pipeline.run.stage_worker"
    assert args.training_script_args == ["runs/x/sft/launch/recipe.yaml", "sft"]

    plain = launch_command({"num_processes": 2}, Path("r.yaml"), "sft")
    args = launch_command_parser().parse_args(plain[plain.index("--multi_gpu"):])
    assert args.multi_gpu and args.num_processes == 2 and args.mixed_precision == "no"
    assert args.main_process_port == 0  # a free port: concurrent single-node launches on one box do not collide


CONFIG_TEXT = {
    "unreadable": "distributed_type: MULTI_GPU\nnum_processes: 2\nbogus_key: 1\n",
    "bad_type": "distributed_type: EIGHT_GPUS\n",
    "yaml": "distributed_type: [MULTI_GPU\n",
    "ds_typo": "distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stag: 2}\n",
    "zero3_nosave": "distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: 3}\n",
    "fsdp_sharded": "distributed_type: FSDP\nfsdp_config: {fsdp_version: 2}\n",
}
BAD_LAUNCH = [
    ("unknown key", "{num_procs: 2}", "unknown key 'num_procs'; did you mean 'num_processes'"),
    ("missing file", "{config: nowhere/zero9.yaml}", "config file 'nowhere/zero9.yaml' not found"),
    ("unreadable", "{config: CONFIG}", "accelerate cannot read"),
    ("bad type", "{config: CONFIG}", "'EIGHT_GPUS' is not a valid DistributedType"),
    ("yaml", "{config: CONFIG}", "invalid YAML"),
    ("ds typo", "{config: CONFIG}", "deepspeed_config.zero_stag is not an accelerate setting; did you mean 'zero_stage'"),
    ("zero3 nosave", "{config: CONFIG}", "set deepspeed_config.zero3_save_16bit_model: true"),
    ("fsdp sharded", "{config: CONFIG}", "use FULL_STATE_DICT"),
    ("processes", "{num_processes: 0}", "num_processes must be a positive integer, got 0"),
    ("rank range", "{num_machines: 2, machine_rank: 2, main_process_ip: h}", "machine_rank 2 is out of range"),
    ("no ip", "{num_machines: 2}", "no main_process_ip"),
    ("extra args", "{extra_args: --foo}", "extra_args must be a list"),
]


@pytest.mark.parametrize("label,launch,expected", BAD_LAUNCH, ids=[c[0] for c in BAD_LAUNCH])
def test_bad_launch_blocks_are_one_line_recipe_errors(tmp_path, capsys, label, launch, expected):
    config = tmp_path / "accel.yaml"
    config.write_text(CONFIG_TEXT.get(label.replace(" ", "_"), ""))
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\nstages:\n  s: {{kind: echo, launch: "
                    f"{launch.replace('CONFIG', str(config))}}}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and "stages.s.launch" in err and expected in err, err


def test_the_recipe_handed_to_workers_keeps_stage_order_overrides_and_anchors(tmp_path):
    from pipeline.run.launch import recipe_text
    from pipeline.run.recipe import config_to_plain

    recipe = load_recipe("recipes/r1-pipeline-full.yaml", ["stages.student.trainer.learning_rate=1.0e-5",
                                                           f"run_dir={tmp_path / 'run'}"])
    path = tmp_path / "worker.yaml"
    path.write_text(recipe_text(recipe))
    again = load_recipe(path)
    assert [s.name for s in again.stages] == [s.name for s in recipe.stages]  # as written, not sorted
    assert [config_to_plain(s.config) for s in again.stages] == [config_to_plain(s.config) for s in recipe.stages]
    assert again.stage("student").config.trainer["learning_rate"] == 1e-5 and again.run_dir == tmp_path / "run"
