"""The quickstart recipe, shrunk to a few steps per stage, runs end to end: every stage, artifact and summary."""

import json

import pytest

from pipeline.run import ledger, runner
from pipeline.run.recipe import load_recipe

SHRINK = [
    "stages.problems.splits={cold: 64, rl: 48, distill: 64, test: 8}",
    "stages.cold_start.model={init: tiny, layers: 1, hidden: 32, heads: 2, kv_heads: 1}",
    "stages.cold_start.trainer.max_steps=3",
    "stages.reasoning_rl.trainer.max_steps=2",
    "stages.reasoning_rl.trainer.logging_steps=1",
    "stages.final_rl.trainer.logging_steps=1",
    "stages.reasoning_rl.trainer.per_device_train_batch_size=8",
    "stages.reasoning_rl.trainer.num_generations=4",
    "stages.samples.data.limit=12",
    # the few-step teacher is never right: pool the reference solutions in as the chosen side of the pairs
    "stages.preferences.data=[{from: samples}, {from: problems, split: rl, limit: 12}]",
    "stages.helpfulness_rm.trainer.max_steps=2",
    "stages.final_rl.trainer.max_steps=1",
    "stages.final_rl.trainer.per_device_train_batch_size=8",
    "stages.final_rl.trainer.num_generations=4",
    "stages.synthesize.data.limit=16",
    # and the reference solutions stand in for its traces, so curation keeps some and the student has data
    "stages.synthesize.backend=procedural",
    "stages.synthesize.model=null",
    "stages.student_base.model={init: tiny, layers: 1, hidden: 32, heads: 2, kv_heads: 1}",
    "stages.student_base.trainer.max_steps=2",
    "stages.distill.trainer.max_steps=2",
    ("stages.evaluate.benchmarks=[{name: column_sum_test, data: {from: problems, split: test}, n: 2, "
     "prompt_template: '{problem}'}]"),
    # a few steps meet no claim: the summary still reports them, without failing the run as the recipe's does
    "stages.summary.fail_on_miss=false",
]


@pytest.mark.slow
def test_shrunken_quickstart_runs_every_stage(tmp_path):
    overrides = SHRINK + [f"run_dir={tmp_path / 'run'}"]
    # A barely trained teacher is right about nothing; the guardrails would stop RL on its flat rewards, which is
    # their job, not this test's subject.
    for stage in ("reasoning_rl", "final_rl"):
        overrides += [f"stages.{stage}.guardrails={{action: warn}}"]
    recipe = load_recipe("recipes/quickstart.yaml", overrides)
    runner.run(recipe)
    run_dir = recipe.run_dir
    for spec in recipe.stages:
        assert (run_dir / spec.name / "DONE").exists(), spec.name
    for stage, curves in (("cold_start", "curves.png"), ("reasoning_rl", "report/curves.png"),
                          ("final_rl", "report/curves.png"), ("distill", "curves.png")):
        assert (run_dir / stage / "model" / "config.json").exists()
        assert (run_dir / stage / curves).exists(), f"{stage}/{curves}"
    assert (run_dir / "curate" / "dataset" / "README.md").exists()
    summary = json.loads((run_dir / "summary" / "summary.json").read_text())
    assert set(summary["models"]) == {"cold_start_teacher", "reasoning_rl_teacher", "rl_teacher",
                                     "answers_only_student", "distilled_student"}
    assert len(summary["checks"]) == 3
    assert {a["status"] for a in ledger.read_attempts(run_dir)} == {"done"}
    assert all(d.action == "cached" for d in runner.plan(load_recipe("recipes/quickstart.yaml", overrides)))


def test_cold_start_schedule_is_the_prefix_of_a_longer_cosine():
    """The recipe stops the cold start at step 750 of a 900-step cosine by shortening the cycle; check the claim."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    trainer = load_recipe("recipes/quickstart.yaml").stage("cold_start").config.trainer

    def lrs(steps, **kwargs):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=trainer["learning_rate"])
        schedule = get_cosine_schedule_with_warmup(optimizer, trainer["warmup_steps"], steps, **kwargs)
        out = []
        for _ in range(trainer["max_steps"]):
            out.append(schedule.get_last_lr()[0])
            optimizer.step()
            schedule.step()
        return out

    stopped = lrs(trainer["max_steps"], **trainer["lr_scheduler_kwargs"])
    planned = lrs(900)
    assert max(abs(a - b) for a, b in zip(stopped, planned)) < 1e-7
    assert stopped[-1] > 0.05 * trainer["learning_rate"]  # stopped before the learning rate anneals
