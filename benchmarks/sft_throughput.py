"""sft_throughput: real (non-padding) tokens/s of the sft stage, with its own defaults, against TRL's default
SFTTrainer on the same model and the same length-skewed traces.

Data: canonical traces (pipeline.data.schema.trace_row) whose chain of thought adds up a list of numbers one at a
time; the list has 3 to 30 numbers, drawn log-uniformly, so thinking lengths vary 10x as in real traces (character
tokenizer: one token per character). Both sides train one epoch over the same rows with the same batch size and
learning rate, so both see exactly the same real tokens.

Ours: the sft stage through a recipe and the runner (`kind: sft`, `trainer: {per_device_train_batch_size,
learning_rate, num_train_epochs}`): its CPU defaults (fp32, no gradient checkpointing, length-grouped batches,
assistant-only loss). Baseline: what a user writes, `SFTTrainer(model_path, args=SFTConfig(output_dir,
use_cpu=True, same batch size, lr, epochs), train_dataset=messages)`, i.e. TRL's defaults (bf16 autocast, gradient
checkpointing, random batches, loss on every token).

Both trainers get the same instrumentation (benchmarks.trainers.instrumented): callbacks time the training loop and a
forward pre-hook counts real and padded tokens of every batch. Quality check: the loss on the assistant tokens of
held-out traces, computed the same way (fp32) for both trained models, so speed is not bought with quality; the
last logged training loss of each is reported too (TRL's default averages over every token, ours over the
assistant turn: not comparable with each other, hence the held-out loss).
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common, trainers

TARGET = 1.5
SIZES = {  # rows, held-out rows, model, batch size, runs per side, steps per profiled run
    "full": {"rows": 1024, "heldout": 64, "batch": 16, "repeats": 1, "profile_steps": 8,
             "model": {"layers": 4, "hidden": 128, "heads": 4, "kv_heads": 2}},
    "quick": {"rows": 256, "heldout": 32, "batch": 16, "repeats": 1, "profile_steps": 6,
              "model": {"layers": 2, "hidden": 96, "heads": 4, "kv_heads": 2}},
    "smoke": {"rows": 32, "heldout": 8, "batch": 8, "repeats": 1, "profile_steps": 2,
              "model": {"layers": 1, "hidden": 32, "heads": 2, "kv_heads": 1}},
}
LEARNING_RATE = 1e-3
BUCKETS = {  # first match wins
    "backward": ("run_backward",),
    "gradient checkpointing": ("checkpoint",),
    "optimizer": ("optim/", "_foreach", "clip_grad"),
    "data and collation": ("collat", "dataloader", "data_loader", "fetch", "tokeniz", "arrow", "datasets/"),
    "forward ops": ("torch._C", "torch.mm", "torch.cat", "TensorBase", "_VariableFunctions", "torch/",
                    "transformers/models/", "transformers/modeling", "transformers/masking"),
    "trainer loop": ("trl/", "transformers/", "accelerate/"),
}


def skewed_traces(count: int, seed: int) -> list[dict]:
    """Canonical traces whose thinking adds 3-30 numbers (log-uniform count), one line per addition."""
    from pipeline.data.schema import trace_row

    rng = random.Random(seed)
    rows = []
    for i in range(count):
        numbers = [rng.randint(1, 99) for _ in range(round(math.exp(rng.uniform(math.log(3), math.log(30)))))]
        lines, total = [], 0
        for n in numbers:
            lines.append(f"{total} + {n} = {total + n}")
            total += n
        rows.append(trace_row(f"Add up: {' '.join(map(str, numbers))}", "\n".join(lines), str(total),
                              id=f"sum-{seed}-{i}", source="bench", gold_answer=str(total)))
    return rows


def run_ours(folder: Path, model_dir: Path, data: Path, batch: int, max_steps: int | None = None, profiler=None):
    """The sft stage through the runner; (trained model dir, its StepClock, its TokenCounter, metrics)."""
    import trl

    clocks, counters = [], []
    trainer = {"per_device_train_batch_size": batch, "learning_rate": LEARNING_RATE, "num_train_epochs": 1}
    if max_steps:
        trainer["max_steps"] = max_steps
    stages = {"sft": {"kind": "sft", "model": str(model_dir), "data": str(data), "trainer": trainer}}
    with trainers.patched(trl, "SFTTrainer", trainers.instrumented(trl.SFTTrainer, clocks, counters, profiler)):
        results = common.run_recipe(common.write_recipe(folder, stages))
    return results["sft"].model, clocks[0], counters[0], common.stage_metrics(folder, "sft")


def run_baseline(folder: Path, model_dir: Path, rows: list[dict], batch: int, max_steps: int | None = None,
                 profiler=None):
    """TRL's default SFTTrainer, as a user writes it; (trained model, StepClock, TokenCounter, log history)."""
    import datasets
    import trl
    from trl import SFTConfig

    clocks, counters = [], []
    extra = {"max_steps": max_steps} if max_steps else {}
    args = SFTConfig(output_dir=str(folder / "out"), use_cpu=True, per_device_train_batch_size=batch,
                     learning_rate=LEARNING_RATE, num_train_epochs=1, **extra)
    train = datasets.Dataset.from_list([{"messages": row["messages"]} for row in rows])
    trainer = trainers.instrumented(trl.SFTTrainer, clocks, counters, profiler)(model=str(model_dir), args=args,
                                                                               train_dataset=train)
    trainer.train()
    return trainer.model, clocks[0], counters[0], trainer.state.log_history


def heldout_loss(model, tokenizer, rows: list[dict]) -> float:
    """Mean cross-entropy over the assistant tokens (eos included) of `rows`, fp32, one row at a time."""
    import torch

    model = model.float().eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for row in rows:
            enc = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
            ids = torch.tensor([enc["input_ids"]])
            keep = torch.tensor(enc["assistant_masks"][1:], dtype=torch.bool)
            logits = model(input_ids=ids).logits[0, :-1]
            total += float(torch.nn.functional.cross_entropy(logits[keep], ids[0, 1:][keep], reduction="sum"))
            count += int(keep.sum())
    return total / count


def last_loss(history: list[dict]) -> float | None:
    """The last logged loss; the run's average (train_loss) when it ended before the first log."""
    losses = [entry["loss"] for entry in history if "loss" in entry] or \
        [entry["train_loss"] for entry in history if "train_loss" in entry]
    return round(losses[-1], 4) if losses else None


def side_figures(clock, counter, loss: float, train_loss) -> dict:
    return {"tokens_per_s": round(counter.real / clock.train_seconds, 1), "train_s": round(clock.train_seconds, 3),
            "real_tokens": counter.real, "padded_tokens": counter.padded, "steps": counter.batches,
            "padding_fraction": round(1 - counter.real / counter.padded, 3), "heldout_loss": round(loss, 4),
            "final_train_loss": train_loss}


def measure(work: Path, model_dir: Path, data: Path, rows: list[dict], heldout: list[dict], size: dict,
            repeats: int) -> dict:
    """Alternate ours and the baseline `repeats` times; every run's figures, per side."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    runs = {"ours": [], "baseline": []}
    for r in range(repeats):
        out, clock, counter, metrics = run_ours(work / f"ours{r}", model_dir, data, size["batch"])
        loss = heldout_loss(AutoModelForCausalLM.from_pretrained(out), tokenizer, heldout)
        final = metrics["final_loss"] if metrics.get("final_loss") is not None else metrics["train_loss"]
        runs["ours"].append(side_figures(clock, counter, loss, round(final, 4)))
        model, clock, counter, history = run_baseline(work / f"base{r}", model_dir, rows, size["batch"])
        runs["baseline"].append(side_figures(clock, counter, heldout_loss(model, tokenizer, heldout),
                                             last_loss(history)))
    return runs


def profile_both(work: Path, model_dir: Path, data: Path, rows: list[dict], size: dict) -> dict:
    """cProfile of the training loops (first step excluded) of a short run of each side, outside the timed runs."""
    steps = size["profile_steps"]
    ours, base = trainers.LoopProfiler(skip=1), trainers.LoopProfiler(skip=1)
    run_ours(work / "prof_ours", model_dir, data, size["batch"], steps, profiler=ours)
    run_baseline(work / "prof_base", model_dir, rows, size["batch"], steps, profiler=base)
    return {"ours": common.summarize(ours.profile, buckets=BUCKETS),
            "baseline": common.summarize(base.profile, buckets=BUCKETS), "steps": steps - 1}


def explain(best: dict, profile: dict) -> str:
    ours, base = best["ours"], best["baseline"]
    return (f"{common.dominant(profile['ours'])}: cProfile of {profile['steps']} steps of the stage's training loop: "
            f"{common.describe_buckets(profile['ours'])}; TRL's default: "
            f"{common.describe_buckets(profile['baseline'])}. Padding: {ours['padding_fraction']:.0%} of our batch "
            f"area vs {base['padding_fraction']:.0%} for TRL's random batches")


def main(argv=None) -> dict:
    args, size, started = common.start(__doc__, argv, SIZES)
    repeats = args.repeats or size["repeats"]
    with tempfile.TemporaryDirectory(prefix="rf-bench-sft-") as tmp, common.stdout_to_stderr():
        work = Path(tmp)
        model_dir = common.save_tiny_model(work / "model", size["model"])
        rows = skewed_traces(size["rows"], seed=0)
        heldout = skewed_traces(size["heldout"], seed=1)
        data = common.write_jsonl(work / "traces.jsonl", rows)
        runs = measure(work, model_dir, data, rows, heldout, size, repeats)
        profile = profile_both(work, model_dir, data, rows, size)
    best = {side: max(runs[side], key=lambda run: run["tokens_per_s"]) for side in runs}
    ratio = best["ours"]["tokens_per_s"] / best["baseline"]["tokens_per_s"]
    lengths = [len(r["thinking"]) for r in rows]
    figures = {"ours": best["ours"], "baseline": best["baseline"], "runs": runs,
               "heldout_loss_ratio": round(best["ours"]["heldout_loss"] / best["baseline"]["heldout_loss"], 3),
               "data": {"rows": len(rows), "thinking_chars_min": min(lengths), "thinking_chars_max": max(lengths),
                        "batch_size": size["batch"], "learning_rate": LEARNING_RATE, "epochs": 1,
                        "model": size["model"]}}
    return common.finish("sft_throughput", args, started, figures=figures, ratio=ratio,
                         headline=("real tokens/s", best["ours"]["tokens_per_s"], best["baseline"]["tokens_per_s"]),
                         target=f"ratio >= {TARGET} (real tokens/s, ours / TRL default)", met=ratio >= TARGET,
                         baseline="trl.SFTTrainer(model_path, args=SFTConfig(output_dir, use_cpu=True, same batch "
                                  "size, lr, epochs), train_dataset=messages): TRL's defaults",
                         limits=explain(best, profile), profile=profile)


if __name__ == "__main__":
    main()
