"""The real-scale recipes: each validates and plans here (no GPU, no hub), opens with its header, and sets what
the scale-out depends on: launch blocks whose accelerate configs accelerate accepts, R1's evaluation protocol,
batch arithmetic that TRL will accept on 8 GPUs, and TRL's vLLM modes passed through the grpo trainer: dict."""

from pathlib import Path

import pytest

import tests.stage_fixtures  # noqa: F401
from pipeline.cli import main
from pipeline.run.launch import launch_command
from pipeline.run.launch_checks import check_launch
from pipeline.run.recipe import RecipeError, load_recipe

SCALE_RECIPES = ["distill-qwen2.5-math-1.5b-openr1", "grpo-qwen2.5-1.5b-math", "synthesize-openai-teacher",
                 "r1-pipeline-full", "eval-r1-distill"]
ACCELERATE_CONFIGS = sorted(Path("recipes/accelerate").glob("*.yaml"))


def recipe_path(name: str) -> Path:
    return Path("recipes") / f"{name}.yaml"


@pytest.mark.parametrize("name", SCALE_RECIPES)
def test_validates_and_plans_here(name, tmp_path, capsys):
    path = recipe_path(name)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert main(["plan", str(path), f"run_dir={tmp_path / 'run'}"]) == 0, capsys.readouterr().err
    planned = [line.split()[:3] for line in capsys.readouterr().out.splitlines() if "will run" in line]
    assert [p[0] for p in planned] == [s.name for s in load_recipe(path).stages]


@pytest.mark.parametrize("name", SCALE_RECIPES)
def test_header_says_purpose_hardware_time_cost_and_command(name):
    lines = recipe_path(name).read_text().splitlines()
    header = "\n".join(line for line in lines[:lines.index(next(x for x in lines if x.startswith("name:")))])
    assert all(line.startswith("#") for line in header.splitlines() if line.strip())
    for word in ("Hardware", "Estimate", "USD", f"reasonforge run recipes/{name}.yaml"):
        assert word in header, f"{name}: header lacks {word!r}"


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=[p.stem for p in ACCELERATE_CONFIGS])
def test_every_accelerate_config_passes_check_launch_and_accelerates_parser(config):
    from accelerate.commands.launch import launch_command_parser

    launch = {"config": str(config), "num_processes": 16, "num_machines": 2, "machine_rank": 1,
              "main_process_ip": "node0", "main_process_port": 29500}
    check_launch(launch)
    cmd = launch_command(launch, Path("r.yaml"), "s")
    args = launch_command_parser().parse_args(cmd[cmd.index("--config_file"):])
    assert args.config_file == str(config) and args.training_script == "pipeline.run.stage_worker"


def test_every_launch_in_the_scale_recipes_uses_a_shipped_config():
    shipped = {str(p) for p in ACCELERATE_CONFIGS}
    launched = [(name, s) for name in SCALE_RECIPES for s in load_recipe(recipe_path(name)).stages if s.launch]
    assert launched
    for name, spec in launched:
        assert spec.launch["config"] in shipped and spec.launch["num_processes"] == 8, (name, spec.name)


def test_distill_recipe_batch_and_r1_protocol():
    recipe = load_recipe(recipe_path("distill-qwen2.5-math-1.5b-openr1"))
    sft = recipe.stage("distill")
    t = sft.config.trainer
    assert sft.launch["config"].endswith("zero3.yaml")
    assert t["per_device_train_batch_size"] * t["gradient_accumulation_steps"] * sft.launch["num_processes"] == 128
    assert t["packing"] and t["bf16"] and t["activation_checkpointing"] and t["num_train_epochs"] == 3
    filtered = [s for s in recipe.stage("traces").config.steps if s["step"] == "filter"]
    assert filtered[0]["max_tokens"] <= t["max_length"]  # long traces are dropped whole, never truncated
    ev = recipe.stage("eval").config
    assert (ev.temperature, ev.top_p, ev.max_new_tokens, ev.backend) == (0.6, 0.95, 32768, "vllm")
    assert {b.name: b.n for b in ev.benchmarks} == {"math500": 4, "aime24": 64}


@pytest.mark.parametrize("name,stage", [("grpo-qwen2.5-1.5b-math", "rl"), ("r1-pipeline-full", "reasoning_rl"),
                                        ("r1-pipeline-full", "final_rl")])
def test_grpo_stages_fit_trl_on_eight_gpus(name, stage):
    spec = load_recipe(recipe_path(name)).stage(stage)
    t = spec.config.trainer
    assert t["use_vllm"] and t["vllm_mode"] == "colocate"
    completions = t["per_device_train_batch_size"] * t["gradient_accumulation_steps"] * spec.launch["num_processes"]
    assert completions % t["num_generations"] == 0  # TRL refuses a generation batch it cannot split into groups


def write(tmp_path, trainer: str) -> Path:
    path = tmp_path / "r.yaml"
    (tmp_path / "x.jsonl").write_text('{"prompt": "1+1?"}\n')  # a recipe's local data must exist when it loads
    path.write_text(f"name: t\nstages:\n  rl: {{kind: grpo, model: x/y, data: {{path: {tmp_path / 'x.jsonl'}}}, "
                    f"rewards: [{{name: accuracy}}], trainer: {trainer}}}\n")
    return path


def test_grpo_vllm_server_mode_reaches_grpo_config(tmp_path):
    from trl import GRPOConfig

    from pipeline.training.common import build_trl_config

    trainer = "{use_vllm: true, vllm_mode: server, vllm_server_base_url: 'http://node0:8000', num_generations: 8}"
    spec = load_recipe(write(tmp_path, trainer)).stage("rl")
    config = build_trl_config(GRPOConfig, spec.config.trainer, tmp_path, 0)
    assert (config.use_vllm, config.vllm_mode, config.vllm_server_base_url) == (True, "server", "http://node0:8000")


@pytest.mark.parametrize("trainer,expected", [
    ("{use_vllm: true, vllm_mode: remote}", "vllm_mode: 'remote' is not a TRL vLLM mode; use colocate"),
    ("{use_vllm: true, vllm_mode: server, vllm_server_base_url: node0:8000}", "write e.g. http://node0:8000"),
    ("{use_vllm: true, vllm_server_url: 'http://x'}", "did you mean 'vllm_server_base_url'"),
])
def test_grpo_vllm_mistakes_are_recipe_errors(tmp_path, trainer, expected):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, trainer))
    assert "stages.rl" in str(e.value) and expected in str(e.value) and "\n" not in str(e.value)
