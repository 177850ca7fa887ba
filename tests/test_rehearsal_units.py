"""The rehearsal's parts that need no model run: shrinking a config, the recipe transform, sizes, projections."""

import pytest
import yaml

from pipeline.rehearsal import parse_size, projection
from pipeline.rehearsal.shrink import shrunk_config
from pipeline.rehearsal.transform import TRAINER, rehearsal_recipe


def qwen_like_config():
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=151936, hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, intermediate_size=8960, max_position_embeddings=4096,
                       rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643)


def test_shrunk_config_keeps_what_pipelines_trip_over_and_cuts_only_compute():
    real = qwen_like_config()
    small = shrunk_config(real, parse_size("2x64"))
    assert (small.num_hidden_layers, small.hidden_size, small.num_attention_heads) == (2, 64, 4)
    assert small.num_key_value_heads == 1  # the real 12:2 grouping stays grouped (4 // 6 -> at least 1)
    assert small.intermediate_size == round(8960 / 1536 * 64)
    for same in ("vocab_size", "max_position_embeddings", "rope_parameters", "tie_word_embeddings", "bos_token_id",
                 "eos_token_id", "model_type"):
        assert getattr(small, same) == getattr(real, same), same
    if getattr(real, "layer_types", None):
        assert len(small.layer_types) == 2
    assert real.num_hidden_layers == 28  # the original is not touched


@pytest.mark.parametrize("text", ["2x", "x64", "0x64", "2x30", "two"])
def test_a_bad_size_is_refused_with_the_form(text):
    with pytest.raises(ValueError, match="LAYERSxHIDDEN|multiple of 4"):
        parse_size(text)


def test_projection_uses_the_ledgers_formulas_on_the_full_size_shape():
    from pipeline.run.compute import ModelShape, training_flops

    shape = ModelShape(params=int(1e9), layers=28, attn_dim=1536)
    lengths = [1000, 3000]  # mean 2000 tokens, token-weighted context (1000^2 + 3000^2) / 4000 = 2500
    cost = projection.sft_cost(projection.StageCost("s", "sft", rows=1000), shape, lengths, {"num_train_epochs": 3})
    assert cost.tokens_trained == 6e6
    assert cost.flops == training_flops(shape, 6e6, 2500.0)
    assert cost.flops > 6 * 1e9 * 6e6  # attention counted on top of 6N
    assert cost.device_hours == pytest.approx(cost.flops / (projection.PEAK_FLOPS * projection.MFU_TRAIN) / 3600)
    grpo = projection.grpo_cost(projection.StageCost("g", "grpo", rows=100), shape, 100.0,
                                {"num_train_epochs": 1, "num_generations": 8, "max_completion_length": 400})
    assert grpo.tokens_generated == 100 * 8 * 100  # 25% of a 400-token budget, stated in the assumptions
    assert any("25%" in a for a in grpo.assumptions)
    with_ref = projection.grpo_cost(projection.StageCost("g", "grpo", rows=100), shape, 100.0,
                                    {"num_train_epochs": 1, "num_generations": 8, "max_completion_length": 400,
                                     "beta": 0.04})
    assert with_ref.flops > grpo.flops  # the reference model's forward pass


RECIPE = """
name: r
run_dir: {run_dir}
stages:
  samples:
    kind: generate
    data: {{path: {data}}}
    model: {{init: tiny}}
    backend: vllm
    options: {{gpu_memory_utilization: 0.9}}
    n: 8
    max_new_tokens: 32768
  traces:
    kind: curate
    data: {{from: samples}}
    steps: [{{step: verify}}]
  sft:
    kind: sft
    model: {{from: traces}}
    data: {{from: traces}}
    launch: {{config: recipes/accelerate/zero3.yaml, num_processes: 8}}
    trainer: {{num_train_epochs: 3, packing: true, padding_free: true, max_length: 16384, vllm_x: 1, bf16: true}}
"""


def test_the_transform_cuts_scale_and_names_every_stand_in(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text("".join(f'{{"id": "{i}", "problem": "{i}+1"}}\n' for i in range(40)))
    raw = yaml.safe_load(RECIPE.format(run_dir=tmp_path / "run", data=data))
    reh = rehearsal_recipe(raw, parse_size(None))
    stages = reh.raw["stages"]
    assert reh.raw["run_dir"] == f"{tmp_path / 'run'}.rehearsal"  # never the real run's cache
    assert stages["samples"]["backend"] == "transformers" and "options" not in stages["samples"]
    assert stages["samples"]["n"] == 2 and stages["samples"]["max_new_tokens"] <= 16
    assert stages["samples"]["data"]["limit"] <= 16  # a local file keeps its path, cut by limit
    assert reh.sources["samples.data"]["full_rows"] == 40
    trainer = stages["sft"]["trainer"]
    assert {k: trainer[k] for k in ("max_steps", "save_steps")} == {"max_steps": 2, "save_steps": 1}
    assert not {"packing", "padding_free", "vllm_x", "num_train_epochs"} & set(trainer)
    assert trainer["max_length"] == 256 and trainer["bf16"] is False
    assert stages["sft"]["launch"] == {"num_processes": 2}
    assert reh.real["sft"]["max_length"] == 16384  # the real value, for the truncation check and the projection
    assert reh.keep_rows == ["traces"]
    notes = "\n".join(reh.notes)
    for expected in ("vLLM -> transformers", "zero3.yaml", "packing, padding_free, vllm_x", "random model"):
        assert expected in notes
    assert raw["stages"]["sft"]["trainer"]["max_length"] == 16384  # the recipe as written is untouched
    assert TRAINER["max_steps"] == 2


def test_launches_off_runs_launch_stages_in_process(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text('{"id": "0", "problem": "1+1"}\n')
    raw = yaml.safe_load(RECIPE.format(run_dir=tmp_path / "run", data=data))
    reh = rehearsal_recipe(raw, parse_size(None), launches=False)
    assert "launch" not in reh.raw["stages"]["sft"]
    assert any("in-process" in note for note in reh.notes)


def test_cli_refuses_a_bad_size_and_partial_runs_in_one_line(capsys):
    from pipeline.cli import main

    assert main(["run", "recipes/smoke.yaml", "--rehearse", "--rehearse-size", "2by64"]) == 2
    assert "--rehearse-size" in capsys.readouterr().err
    assert main(["run", "recipes/smoke.yaml", "--rehearse", "--only", "x"]) == 2
    assert "whole recipe" in capsys.readouterr().err
