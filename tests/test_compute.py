"""pipeline/run/compute.py: the FLOPs formulas against torch's FlopCounterMode on a tiny Llama, and the ledger's use of
them (attention, GRPO's extra forward passes, a distillation teacher) and of the per-device prices."""

from types import SimpleNamespace

import pytest

import pipeline.stages  # noqa: F401  (registers the stage kinds a recipe names)
from pipeline.run import compute, ledger
from pipeline.run.recipe import RecipeError, build_recipe


def tiny_llama(layers: int = 2, hidden: int = 64, vocab: int = 300):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    # Eager attention: its QK^T and softmax x V are matmuls FlopCounterMode counts; the CPU kernel behind sdpa
    # (_scaled_dot_product_flash_attention_for_cpu) has no flop formula, so the counter would miss attention.
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=3 * hidden, max_position_embeddings=1024,
                         tie_word_embeddings=True, attn_implementation="eager")
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def test_shape_counts_every_matmul_weight_once_and_no_embedding_lookup():
    model = tiny_llama()
    shape = compute.shape_of(model)
    layer = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 192  # q, o; k, v (2 kv heads of 16); gate, up, down
    assert shape == compute.ModelShape(params=2 * layer + 300 * 64, layers=2, attn_dim=64, head=300 * 64)


@pytest.mark.parametrize("batch,length", [(2, 128), (1, 512)])
def test_training_step_flops_match_flop_counter(batch, length):
    """One forward+backward: the formula within 10% of the matmul FLOPs torch counts (attention is about a
    third of them at length 512 here, so leaving it out would fail)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny_llama()
    ids = torch.randint(0, 300, (batch, length))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    measured = counter.get_total_flops()
    shape = compute.shape_of(model)
    assert compute.training_flops(shape, batch * length, length) == pytest.approx(measured, rel=0.1)
    assert 6 * shape.params * batch * length < 0.9 * measured  # the old 6N estimate misses the attention


def test_generation_flops_match_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny_llama().eval()
    prompt, new = 96, 160
    ids = torch.randint(3, 300, (2, prompt))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0,
                             eos_token_id=None)
    assert out.shape[1] == prompt + new
    measured = counter.get_total_flops()
    shape = compute.shape_of(model)
    assert compute.generation_flops(shape, 2 * prompt, 2 * new, sequences=2) == pytest.approx(measured, rel=0.1)
    assert 2 * shape.params * 2 * (prompt + new) < 0.9 * measured


def make_attempt(tmp_path, device_kind="cpu", device_count=2, prices=None):
    prices = prices or compute.Prices()
    attempt = ledger.Attempt(tmp_path / "ledger.jsonl", "s", "sft", 1, prices.gpu_hour, prices=prices)
    attempt.device_kind, attempt.device_count = device_kind, device_count
    return attempt


def test_a_cpu_is_priced_per_core_hour_and_a_gpu_per_gpu_hour(tmp_path):
    prices = compute.Prices(gpu_hour=3.0, cpu_core_hour=0.05)
    cpu = make_attempt(tmp_path, "cpu", 4, prices).row("done", wall_s=3600)
    assert cpu["billed_unit"] == "CPU core" and cpu["device_hours"] == 4 and cpu["cost_usd"] == pytest.approx(0.2)
    gpu = make_attempt(tmp_path, "NVIDIA H100", 8, prices).row("done", wall_s=1800)
    assert gpu["billed_unit"] == "GPU" and gpu["cost_usd"] == pytest.approx(12.0)
    old = ledger.new_attempt(tmp_path, "s", "sft", 5.0, tmp_path, writer=False)  # a number: the GPU price
    assert old.prices == compute.Prices(gpu_hour=5.0)


def test_recipe_prices_and_the_cost_table_says_which(tmp_path):
    stages = {"problems": {"kind": "tasks", "task": "arithmetic"}}
    recipe = build_recipe({"name": "p", "stages": stages, "price_per_gpu_hour": 3, "price_per_cpu_core_hour": 0.1},
                          "r.yaml")
    assert recipe.prices == compute.Prices(gpu_hour=3.0, cpu_core_hour=0.1)
    assert build_recipe({"name": "p", "stages": stages, "price_per_device_hour": 4}, "r.yaml").prices.gpu_hour == 4
    with pytest.raises(RecipeError, match="price_per_device_hour.*keep only price_per_gpu_hour"):
        build_recipe({"name": "p", "stages": stages, "price_per_device_hour": 4, "price_per_gpu_hour": 3}, "r.yaml")
    with pytest.raises(RecipeError, match="price_per_cpu_core_hour: must be >= 0"):
        build_recipe({"name": "p", "stages": stages, "price_per_cpu_core_hour": -1}, "r.yaml")
    attempt = make_attempt(tmp_path, prices=recipe.prices)
    attempt.begin()
    attempt.finish("done")
    table = ledger.format_cost_table(tmp_path)
    assert "priced:   0.1 USD per CPU core-hour (cpu); dev-h counts CPU core-hours" in table


def test_ledger_flops_count_attention_and_the_teacher(tmp_path):
    shape, teacher = compute.ModelShape(1000, 2, 64), compute.ModelShape(5000, 4, 128)
    attempt = make_attempt(tmp_path)
    attempt.add(params=1234, model=shape, context=100, tokens_trained=10)
    assert attempt.params == 1000 and attempt.flops == 10 * (6 * 1000 + 12 * 2 * 100 * 64)
    attempt.add(model=shape, teacher=teacher, context=50, tokens_trained=4, tokens_teacher=4)
    assert attempt.flops == pytest.approx(10 * (6000 + 153600) + 4 * (6000 + 12 * 2 * 50 * 64)
                                          + 4 * (10000 + 4 * 4 * 50 * 128))
    assert attempt.row("done")["flops"] == attempt.flops and attempt.counters["tokens_teacher"] == 4
    plain = make_attempt(tmp_path)
    plain.add(params=1000, tokens_generated=5, tokens_prompt=3)  # size only: 2N per token, as before
    assert plain.flops == 2 * 1000 * 8


def grpo_flops(tmp_path, **config) -> tuple[float, dict]:
    from pipeline.stages.grpo import grpo_ledger_callback

    settings = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "world_size": 1,
                "num_iterations": 1, "steps_per_generation": 1, "beta": 0.0, **config}
    attempt = make_attempt(tmp_path)
    callback = grpo_ledger_callback(attempt, 10, SimpleNamespace(**settings))
    model = tiny_llama(layers=1, hidden=32)
    state = SimpleNamespace(num_input_tokens_seen=0, global_step=0)
    callback.on_train_begin(None, state, None, model=model)
    state.num_input_tokens_seen, state.global_step = 400, 1
    callback.on_log(None, state, None, logs={"completions/mean_length": 60.0})
    return attempt.flops, attempt.counters


def test_grpo_counts_reference_and_old_policy_passes_and_every_iteration(tmp_path):
    base, counters = grpo_flops(tmp_path)
    assert counters["tokens_trained"] == 400 and counters["tokens_generated"] == 240 and counters["tokens_forward"] == 0
    with_ref, counters = grpo_flops(tmp_path, beta=0.04)
    shape = compute.shape_of(tiny_llama(layers=1, hidden=32))
    one_forward = compute.forward_flops(shape, 400, context=100)  # 4 completions of 100 prompt+completion tokens
    assert counters["tokens_forward"] == 400 and with_ref - base == pytest.approx(one_forward)
    reused, counters = grpo_flops(tmp_path, num_iterations=2, steps_per_generation=1)  # 1 % 2: old policy runs
    assert counters["tokens_trained"] == 800 and counters["tokens_forward"] == 400
    # 2 new completions per step (4 samples, each trained on twice) of 200 tokens: trained twice, forward once
    assert reused == pytest.approx(compute.training_flops(shape, 800, 200) + compute.forward_flops(shape, 400, 200)
                                   + compute.generation_flops(shape, 280, 120, sequences=2))


def test_training_sequence_lengths_from_mask_packed_positions_or_rows():
    """The attention term's context: a padded row counts its real tokens, a padding-free packed row each of its
    sequences (they do not attend to each other), a row without either its full width."""
    import torch

    from pipeline.training.common import sequence_lengths

    ids = torch.zeros(2, 5, dtype=torch.long)
    assert sequence_lengths(ids, torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])).tolist() == [3, 5]
    packed = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3, 4]])
    assert sequence_lengths(torch.zeros(1, 10, dtype=torch.long), None, packed).tolist() == [3, 2, 5]
    assert sequence_lengths(ids).tolist() == [5, 5]
