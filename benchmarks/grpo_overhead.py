"""grpo_overhead: seconds per GRPO step of the grpo stage against `trl.GRPOTrainer` called directly with the same
config, the same rewards, the same tiny model and the same prompts.

Ours: `kind: grpo` through a recipe and the runner, with rewards accuracy (1.0) and think_format (0.2), and
`guardrails: {action: warn}` (a random-init model trips them at once; warn keeps them checking every log without
stopping the run). Everything the stage adds runs: prompt rendering, reward building, the guardrail and ledger
callbacks, curves, saving. Baseline: the GRPOConfig the stage built (captured from its trainer, copied, with another
output_dir), `GRPOTrainer(model, reward_funcs=[the same reward functions], args, train_dataset=chat prompts with
gold_answer, processing_class=tokenizer)`, then `train()`.

The two run in lockstep (benchmarks.trainers.Lockstep): two threads of one process, ours starting up alone, then
the baseline starting up alone, then the two taking turns one step each. On 2 cores shared with other jobs the
wall time of one trainer's 0.1 s steps varied 1.3-2.5x between runs a minute apart (measured here), far more than
the 5% the target allows; alternate steps see the same load, so their ratio holds. A step runs from the moment its
trainer gets the turn to its next on_step_begin: generation, rewards, loss, backward, the optimizer, logging and
every callback. The first `warmup` steps and the last one (it also saves the final checkpoint) are left out;
start-up (stage start or model load to on_train_begin) is reported apart. Headline: median wall seconds per step
pooled over `repeats` pairs, ours / baseline; thread CPU seconds per step alongside (cpu_ratio). The profile
measures the time spent inside ReasonForge code during the stage's loop (own_code_share).
"""

from __future__ import annotations

import copy
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common, trainers

TARGET = 1.05
REWARDS = [{"name": "accuracy", "weight": 1.0}, {"name": "think_format", "weight": 0.2}]
SIZES = {
    "full": {"prompts": 128, "batch": 16, "generations": 4, "completion": 48, "warmup": 3, "steps": 30, "repeats": 3,
             "model": {"layers": 2, "hidden": 128, "heads": 4, "kv_heads": 2}},
    "quick": {"prompts": 64, "batch": 8, "generations": 4, "completion": 32, "warmup": 2, "steps": 30, "repeats": 3,
              "model": {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2}},
    "smoke": {"prompts": 8, "batch": 4, "generations": 2, "completion": 8, "warmup": 1, "steps": 2, "repeats": 1,
              "model": {"layers": 1, "hidden": 32, "heads": 2, "kv_heads": 1}},
}
BUCKETS = {  # first match wins
    "ours: rewards": ("rewards/",),
    "ours: stage code": ("pipeline/",),
    "backward": ("run_backward",),
    "generation": ("generation/", "cache_utils", "masking_utils", "multinomial", "logits_process"),
    "model ops": ("torch._C", "torch/", "transformers/models/", "transformers/modeling", "TensorBase",
                  "_VariableFunctions", "torch.cat"),
    "trl, transformers and accelerate loop": ("trl/", "transformers/", "accelerate/", "datasets/"),
}


def write_prompts(path: Path, count: int) -> Path:
    rng = random.Random(0)
    rows = []
    for i in range(count):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        rows.append({"id": f"q{i}", "problem": f"{a}+{b}=", "gold_answer": str(a + b)})
    return common.write_jsonl(path, rows)


def trainer_settings(size: dict) -> dict:
    return {"max_steps": size["warmup"] + size["steps"] + 1, "per_device_train_batch_size": size["batch"],
            "num_generations": size["generations"], "max_completion_length": size["completion"],
            "learning_rate": 1e-4, "temperature": 1.0, "disable_tqdm": True}


def run_ours(folder: Path, model_dir: Path, data: Path, size: dict, lockstep=None, configs=None, profiler=None):
    """The grpo stage through the runner (the trainer it builds is instrumented); returns when training ended."""
    import trl

    trainer_cls = trainers.instrumented(trl.GRPOTrainer, [], profiler=profiler, configs=configs,
                                      lockstep=(lockstep, "ours") if lockstep else None)
    stages = {"rl": {"kind": "grpo", "model": str(model_dir), "data": str(data), "rewards": REWARDS,
                     "trainer": trainer_settings(size), "guardrails": {"action": "warn"}}}
    recipe = common.write_recipe(folder, stages)
    with trainers.patched(trl, "GRPOTrainer", trainer_cls):
        common.run_recipe(recipe)


def run_baseline(folder: Path, model_dir: Path, data: Path, config, trainer_cls, lockstep) -> None:
    """`trainer_cls` (trl.GRPOTrainer) called directly with the stage's config (another output_dir), the same
    rewards, model, tokenizer and prompts."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import rewards

    args = copy.deepcopy(config)
    args.output_dir = str(folder / "out")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    train = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["problem"]}],
                                         "gold_answer": r["gold_answer"]} for r in rows])
    trainer = trainers.instrumented(trainer_cls, [], lockstep=(lockstep, "baseline"))(
        model=model, reward_funcs=[rewards.build_reward(spec) for spec in REWARDS], args=args, train_dataset=train,
        processing_class=tokenizer)
    trainer.train()


def run_pair(folder: Path, model_dir: Path, data: Path, size: dict) -> dict:
    """Ours and the baseline in lockstep (trainers.Lockstep): ours starts up alone, then the baseline starts up alone
    while ours waits, then they alternate steps. Per side: steady steps and start-up seconds."""
    import trl

    lock, configs, errors, starts = trainers.Lockstep(first="baseline"), [], [], {}
    original = trl.GRPOTrainer

    def guarded(name, fn, *args, **kwargs):
        starts[name] = time.perf_counter()
        try:
            fn(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(error)
        finally:
            lock.finish(name)

    ours = threading.Thread(target=guarded, args=("ours", run_ours, folder / "ours", model_dir, data, size),
                            kwargs={"lockstep": lock, "configs": configs})
    ours.start()
    lock.ready["ours"].wait()
    if not errors:
        base = threading.Thread(target=guarded, args=("baseline", run_baseline, folder / "base", model_dir, data,
                                                      configs[0], original, lock))
        base.start()
        base.join()
    ours.join()
    if errors:
        raise errors[0]
    return {name: side_figures(lock, name, starts[name], size) for name in lock.names}


def side_figures(lock, name: str, start: float, size: dict) -> dict:
    steps = lock.steps[name]
    steady = steps[size["warmup"]:-1]
    return {"median_step_s": round(common.median([w for w, _ in steady]), 4),
            "median_step_cpu_s": round(common.median([c for _, c in steady]), 4), "steady_steps": len(steady),
            "startup_s": round(lock.train_begin[name] - start, 3),
            "warmup_steps_s": [round(w, 3) for w, _ in steps[:size["warmup"]]],
            "steady_wall_s": [round(w, 4) for w, _ in steady], "steady_cpu_s": [round(c, 4) for _, c in steady]}


def pooled(runs: list[dict]) -> dict:
    """Medians over the steady steps of every run of one side."""
    return {"median_step_s": round(common.median([s for run in runs for s in run["steady_wall_s"]]), 4),
            "median_step_cpu_s": round(common.median([s for run in runs for s in run["steady_cpu_s"]]), 4),
            "steps": sum(run["steady_steps"] for run in runs),
            "startup_s": round(common.median([run["startup_s"] for run in runs]), 3)}


def profile_ours(work: Path, model_dir: Path, data: Path, size: dict) -> dict:
    """cProfile of the stage's training loop (first step excluded)."""
    profiler = trainers.LoopProfiler(skip=1)
    run_ours(work / "profile", model_dir, data, size, profiler=profiler)
    return common.summarize(profiler.profile, buckets=BUCKETS, own_code=("pipeline/",))


def main(argv=None) -> dict:
    args, size, started = common.start(__doc__, argv, SIZES)
    runs = {"ours": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="rf-bench-grpo-") as tmp, common.stdout_to_stderr():
        work = Path(tmp)
        model_dir = common.save_tiny_model(work / "model", size["model"])
        data = write_prompts(work / "prompts.jsonl", size["prompts"])
        for r in range(args.repeats or size["repeats"]):
            pair = run_pair(work / f"pair{r}", model_dir, data, size)
            for side, side_runs in runs.items():
                side_runs.append(pair[side])
        profile = profile_ours(work, model_dir, data, size)
    sides = {side: pooled(runs[side]) for side in runs}
    ratio = sides["ours"]["median_step_s"] / sides["baseline"]["median_step_s"]
    limits = (f"{common.dominant(profile)}: cProfile of the stage's training loop: "
              f"{common.describe_buckets(profile, 4)}; time inside the stage's own code (guardrail and ledger "
              f"callbacks, with what they call) {profile['own_code_share']:.1%} of the loop, rewards (the same "
              f"functions on both sides) {profile['buckets'].get('ours: rewards', 0):.1%}")
    figures = {**sides, "cpu_ratio": round(sides["ours"]["median_step_cpu_s"] / sides["baseline"]["median_step_cpu_s"],
                                           3),
               "runs": runs, "setup": {**trainer_settings(size), "rewards": REWARDS, "prompts": size["prompts"],
                                       "model": size["model"]}}
    return common.finish("grpo_overhead", args, started, figures=figures, ratio=ratio,
                         headline=("s/step (median, lockstep)", sides["ours"]["median_step_s"],
                                   sides["baseline"]["median_step_s"]),
                         target=f"ratio <= {TARGET} (median seconds per step after warm-up, ours / trl.GRPOTrainer, "
                                "steps taken in lockstep)", met=ratio <= TARGET,
                         baseline="trl.GRPOTrainer(model, reward_funcs=same rewards, args=the stage's GRPOConfig, "
                                  "train_dataset=chat prompts, processing_class=tokenizer).train()",
                         limits=limits, profile=profile)


if __name__ == "__main__":
    main()
