"""GRPO stage: trains, logs a reward per function, draws curves, resumes after a crash; guardrails trip."""

import json
import shutil
from pathlib import Path

import pytest

from pipeline.run import runner
from pipeline.run.recipe import RecipeError, load_recipe
from pipeline.training.guardrails import GuardrailError, GuardrailMonitor, Guardrails, check_prefill
from tests.helpers import write_jsonl, write_recipe


# Rewards the recipes below import by dotted path (tests.test_grpo.NAME).
def step_probe(completions, trainer_state=None, probe=None, **kwargs):
    """Dense reward (share of digits in the completion) that appends the step it is called at to PROBE.calls and,
    while PROBE.crash exists, interrupts training at step 2 (after checkpoint-2 was saved). PROBE itself never
    exists, so the fingerprint (which hashes existing files named in the config) does not change between runs."""
    step = trainer_state.global_step
    with open(f"{probe}.calls", "a") as f:
        f.write(f"{step}\n")
    crash = Path(f"{probe}.crash")
    if crash.exists() and step >= 2:
        crash.unlink()
        raise KeyboardInterrupt("simulated kill at step 2")
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


def write_prompts(path: Path, n: int = 16) -> Path:
    rows = [{"problem": f"{i}+{i + 1}=", "gold_answer": str(2 * i + 1)} for i in range(n)]
    return write_jsonl(path, rows)


def trainer(max_steps: int, max_completion_length: int, **extra) -> str:
    values = {"max_steps": max_steps, "num_generations": 4, "per_device_train_batch_size": 8, "learning_rate": 0.001,
              "max_completion_length": max_completion_length, "save_steps": 2, "temperature": 1.0, **extra}
    return "{" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"


def test_grpo_trains_logs_curves_and_resumes_after_crash(tmp_path, tiny_model_dir):
    data = write_prompts(tmp_path / "p.jsonl")
    probe = tmp_path / "probe"
    calls = tmp_path / "probe.calls"
    (tmp_path / "probe.crash").write_text("1")
    stage = f"""\
rl:
  kind: grpo
  model: {tiny_model_dir}
  data: {data}
  prompt_template: "Add: {{problem}}"
  rewards:
    - {{name: accuracy, weight: 1.0}}
    - {{name: tests.test_grpo.step_probe, weight: 0.5, probe: {probe}}}
  trainer: {trainer(4, 8, beta=0.01)}
  guardrails: {{action: warn, patience: 1}}
"""
    recipe = load_recipe(write_recipe(tmp_path, stage))
    with pytest.raises(KeyboardInterrupt):
        runner.run(recipe)
    stage_dir = recipe.run_dir / "rl"
    assert (stage_dir / "checkpoints" / "checkpoint-2").is_dir() and not (stage_dir / "DONE").exists()
    first_steps = [int(s) for s in calls.read_text().split()]
    calls.unlink()

    result = runner.run(load_recipe(recipe.path))["rl"]  # same config: resumes, does not restart
    resumed_steps = [int(s) for s in calls.read_text().split()]
    assert first_steps == [0, 1, 2] and resumed_steps == [2, 3]
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] == "checkpoint-2" and metrics["global_step"] == 4 and metrics["kl"] > 0
    curves = json.loads((stage_dir / "report" / "curves.json").read_text())
    for key in ("rewards/accuracy/mean", "rewards/tests.test_grpo.step_probe/mean", "completions/clipped_ratio"):
        assert len(curves[key]) >= 2, key
    assert (stage_dir / "report" / "curves.png").stat().st_size > 1000
    assert metrics["guardrails"]["warnings"] > 0  # an untrained model never stops: warned, not stopped (warn)
    assert metrics["ledger"]["tokens_generated"] > 0
    assert metrics["ledger"]["tokens_trained"] > metrics["ledger"]["tokens_generated"]

    from transformers import AutoModelForCausalLM, AutoTokenizer

    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    after = AutoModelForCausalLM.from_pretrained(result.model)
    changed = [n for (n, p), q in zip(before.named_parameters(), after.parameters()) if not p.equal(q)]
    assert len(changed) > len(list(after.parameters())) // 2
    assert "{% generation %}" in AutoTokenizer.from_pretrained(result.model).chat_template


TINY_INIT = "{init: tiny, layers: 1, hidden: 32, heads: 2, kv_heads: 1}"


@pytest.mark.parametrize("guard,reward,expected", [
    ("{patience: 1}", "accuracy", "no_eos"),
    ("{patience: 1, no_eos: false}", "accuracy", "truncation"),
    ("{patience: 2, no_eos: false, max_clipped_ratio: null}", "tests.test_grpo.constant_reward", "zero_std"),
])
def test_guardrail_stops_training_with_reason(tmp_path, tiny_model_dir, guard, reward, expected):
    # the zero_std case also covers a tiny-init policy with a KL reference model (beta > 0)
    model, extra = (TINY_INIT, {"beta": 0.01}) if expected == "zero_std" else (tiny_model_dir, {})
    data = write_prompts(tmp_path / "p.jsonl", 8)
    stage = f"""\
rl:
  kind: grpo
  model: {model}
  data: {data}
  rewards: [{{name: {reward}}}]
  trainer: {trainer(6, 2, **extra)}
  guardrails: {guard}
"""
    recipe = load_recipe(write_recipe(tmp_path, stage))
    with pytest.raises(GuardrailError) as info:
        runner.run(recipe)
    message = str(info.value)
    assert message.startswith(f"guardrail {expected} stopped GRPO") and "\n" not in message and "Fix:" in message
    stage_dir = recipe.run_dir / "rl"
    metrics = json.loads((stage_dir / "metrics.json").read_text())
    assert metrics["status"] == "stopped_by_guardrail" and metrics["guardrails"]["stopped_by"]["name"] == expected
    patience = 2 if expected == "zero_std" else 1
    assert metrics["global_step"] == patience  # stopped as soon as it tripped, not at max_steps
    assert Path(metrics["checkpoint"]).name == f"checkpoint-{patience}" and Path(metrics["checkpoint"]).is_dir()
    assert not (stage_dir / "DONE").exists() and not (stage_dir / "model").exists()


def test_prefilled_think_with_format_reward_fails_before_training(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    model_dir = tmp_path / "prefill_model"
    shutil.copytree(tiny_model_dir, model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = tok.chat_template.replace("{{ '<|assistant|>\n' }}{% endif %}",
                                                  "{{ '<|assistant|>\n<think>\n' }}{% endif %}")
    tok.save_pretrained(model_dir)
    data = write_prompts(tmp_path / "p.jsonl", 8)
    stage = f"""\
rl: {{kind: grpo, model: {model_dir}, data: {data}, rewards: [{{name: think_format}}], trainer: {trainer(2, 4)}}}
"""
    recipe = load_recipe(write_recipe(tmp_path, stage))
    with pytest.raises(GuardrailError, match=r"prefills the think tag.*Fix: add `prefilled: true`"):
        runner.run(recipe)
    assert not (recipe.run_dir / "rl" / "checkpoints").exists()
    check_prefill(tok, [{"name": "think_format", "prefilled": True}])  # the fix it names is accepted
    check_prefill(tok, [{"name": "accuracy"}])  # no format reward: nothing to warn about


def monitor(**settings):
    return GuardrailMonitor(Guardrails.from_dict(settings), context={"max_completion_length": 64})


def test_monitor_on_synthetic_logs():
    m = monitor(patience=3)
    assert m.observe({"completions/clipped_ratio": 0.8, "frac_reward_zero_std": 0.1}, 1) is None
    assert m.observe({"completions/clipped_ratio": 0.8}, 2) is None
    assert m.observe({"train_runtime": 3.0}, 2) is None  # no metric: neither counts nor resets
    trip = m.observe({"completions/clipped_ratio": 0.9}, 3)
    assert trip.name == "truncation" and trip.step == 3 and "max_completion_length=64" in trip.message
    assert m.observe({"completions/clipped_ratio": 0.9}, 4) is None  # stops once

    m = monitor(patience=2)
    m.observe({"completions/clipped_ratio": 1.0, "frac_reward_zero_std": 1.0}, 1)
    trip = m.observe({"completions/clipped_ratio": 1.0, "frac_reward_zero_std": 1.0, "reward": 0.0}, 2)
    assert trip.name == "no_eos" and {t.name for t in m.trips} == {"no_eos", "truncation", "zero_std"}

    m = monitor(patience=2)
    m.observe({"frac_reward_zero_std": 1.0}, 1)
    m.observe({"frac_reward_zero_std": 0.5}, 2)  # a healthy log resets the streak
    assert m.observe({"frac_reward_zero_std": 1.0}, 3) is None
    assert m.observe({"frac_reward_zero_std": 1.0, "reward": 1.0}, 4).name == "zero_std"

    m = monitor(patience=1, action="warn")
    assert m.observe({"completions/clipped_ratio": 1.0}, 1) is None and m.stopped_by is None
    assert [t.name for t in m.trips] == ["no_eos", "truncation"] and m.warnings == 2

    m = monitor(patience=1, max_clipped_ratio=None, no_eos=False, max_zero_std_frac=None)
    assert m.observe({"completions/clipped_ratio": 1.0, "frac_reward_zero_std": 1.0}, 1) is None and not m.trips


def test_guardrail_and_reward_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"guardrails.patients: unknown key; did you mean 'patience'"):
        Guardrails.from_dict({"patients": 3})
    with pytest.raises(ValueError, match=r"guardrails.max_clipped_ratio: must be a fraction"):
        Guardrails.from_dict({"max_clipped_ratio": 2})
    cases = {
        "rewards: [{name: acuracy}]": r"rewards\[0\]: Unknown reward 'acuracy'.*accuracy",
        "rewards: [{name: accuracy, gold: x}]": r"rewards\[0\]: Unknown parameter 'gold'",
        "rewards: [{name: helpfulness, model: 3}]": r"rewards\[0\].model: expected a path",
        "rewards: [{name: accuracy}, {name: accuracy}]": r"rewards\[1\]: 'accuracy' appears twice",
        "rewards: [{name: accuracy}]\n  trainer: {max_prompt_length: 64}": r"trainer.max_prompt_length.*removed",
        "rewards: [{name: accuracy}]\n  guardrails: {action: halt}": r"guardrails.action: 'halt'",
        "rewards: [{name: helpfulness, model: {from: nope}}]": r"from: 'nope' names no earlier stage",
        "rewards: [{name: accuracy}]\n  prompt_template: 'Solve {problem'": r"prompt_template: it uses no column",
    }
    for body, pattern in cases.items():
        path = write_recipe(tmp_path, f"rl:\n  kind: grpo\n  model: m\n  data: d.jsonl\n  {body}\n")
        with pytest.raises(RecipeError, match=pattern):
            load_recipe(path)
