"""generate_throughput: the generate stage on the transformers backend against a hand-written batched
`model.generate` loop over the same prompts, with the same batch size and the same sampling.

Ours: `kind: generate, backend: transformers` through a recipe and the runner (pipeline.generation.make_backend
inside): prompts rendered with the chat template, sorted by length, batched, sampled, cut at eos, written to JSONL
shards fsynced batch by batch, then consolidated into a `datasets` folder. Baseline: load the model and tokenizer,
render the same chat prompts, sort them by length (as the stage does: a hand-written loop that pads each batch to
a random mix of lengths would be a weaker baseline than the obvious fix), and for each batch of `batch_size`
prompts: tokenize (left padding), `model.generate(do_sample=True, temperature, top_p, top_k=0, max_new_tokens)`,
decode.

Figures: generated tokens/s of the generation loop (ours: `generation_s` and `tokens_generated` from the stage's
generation.json, which include building rows and writing shards; baseline: the loop), tokens/s end to end (model
load to the last byte written; ours includes consolidation), and time to first shard (ours: stage start to the first
shard file having a row; baseline: load start to the first batch decoded). Tokens are counted the same way on both
sides: up to and including the first eos, padding excluded.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common
from benchmarks.sft_throughput import skewed_traces

TARGET = 0.95
SAMPLING = {"temperature": 0.7, "top_p": 0.95}
SIZES = {
    "full": {"prompts": 512, "batch": 32, "new_tokens": 128, "repeats": 2,
             "model": {"layers": 4, "hidden": 128, "heads": 4, "kv_heads": 2}},
    "quick": {"prompts": 128, "batch": 32, "new_tokens": 64, "repeats": 2,
              "model": {"layers": 2, "hidden": 128, "heads": 4, "kv_heads": 2}},
    "smoke": {"prompts": 16, "batch": 8, "new_tokens": 16, "repeats": 1,
              "model": {"layers": 1, "hidden": 32, "heads": 2, "kv_heads": 1}},
}
BUCKETS = {  # first match wins: sampling before the model's ops, ours before the generic ones
    "shards and rows (ours)": ("pipeline/", "fsync", "json/"),
    "consolidate (ours)": ("arrow", "datasets/", "parquet"),
    "sampling and stopping": ("logits_process", "stopping_criteria", "multinomial", "softmax", "torch.sort",
                              "cumsum"),
    "generate loop": ("generation/", "cache_utils", "masking_utils", "configuration_utils", "integrations/"),
    "model forward": ("torch._C", "torch.cat", "torch.arange", "torch/nn/", "modeling_llama", "TensorBase",
                      "_VariableFunctions"),
    "start-up (imports)": ("importlib", "marshal", "builtins.compile", "_imp.", "open_code"),
}


class FirstShard:
    """Watches a shards folder from a thread; `seconds` is when its first part file first held a byte."""

    def __init__(self, folder: Path):
        self.folder, self.seconds = folder, None
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            if any(p.stat().st_size > 0 for p in self.folder.glob("part-*.jsonl")):
                self.seconds = time.perf_counter() - self.started
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_ours(folder: Path, model_dir: Path, data: Path, size: dict) -> dict:
    stages = {"gen": {"kind": "generate", "model": str(model_dir), "data": str(data), "backend": "transformers",
                      "prompt_template": "{problem}", "n": 1, "max_new_tokens": size["new_tokens"],
                      "batch_size": size["batch"], **SAMPLING}}
    recipe = common.write_recipe(folder, stages)
    watcher = FirstShard(folder / "run" / "gen" / "shards")
    start = time.perf_counter()
    common.run_recipe(recipe)
    wall = time.perf_counter() - start
    watcher.stop()
    gen = json.loads((folder / "run" / "gen" / "generation.json").read_text())
    return {"tokens": gen["tokens_generated"], "loop_s": gen["generation_s"],
            "tokens_per_s": round(gen["tokens_generated"] / gen["generation_s"], 1),
            "end_to_end_s": round(wall, 3), "end_to_end_tokens_per_s": round(gen["tokens_generated"] / wall, 1),
            "first_shard_s": round(watcher.seconds, 3) if watcher.seconds is not None else None}


def generated_tokens(row: list[int], eos: int, pad: int) -> int:
    """Tokens up to and including the first eos; without eos, every non-pad token."""
    return row.index(eos) + 1 if eos in row else sum(t != pad for t in row)


def run_baseline(model_dir: Path, problems: list[str], size: dict) -> dict:
    """The loop a user writes: load, render, sort by length, then tokenize / generate / decode each batch."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                             tokenize=False) for p in problems]
    prompts.sort(key=len)  # the stage's order (by rendered length; one token per character here)
    loop_start, first, tokens, texts = time.perf_counter(), None, 0, []
    for b in range(0, len(prompts), size["batch"]):
        enc = tokenizer(prompts[b:b + size["batch"]], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(b)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, top_k=0, max_new_tokens=size["new_tokens"], **SAMPLING)
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        texts += tokenizer.batch_decode(new, skip_special_tokens=True)
        tokens += sum(generated_tokens(row, tokenizer.eos_token_id, tokenizer.pad_token_id) for row in new)
        first = first or time.perf_counter() - start
    end = time.perf_counter()
    return {"tokens": tokens, "loop_s": round(end - loop_start, 3),
            "tokens_per_s": round(tokens / (end - loop_start), 1), "end_to_end_s": round(end - start, 3),
            "end_to_end_tokens_per_s": round(tokens / (end - start), 1), "first_batch_s": round(first, 3)}


def profile_ours(folder: Path, model_dir: Path, data: Path, size: dict) -> dict:
    _, profile = common.cprofile(run_ours, folder, model_dir, data, size, buckets=BUCKETS)
    return profile


def explain(profile: dict) -> str:
    buckets = profile["buckets"]
    ours = sum(v for k, v in buckets.items() if k.endswith("(ours)"))
    return (f"{common.dominant(profile)}: cProfile of one whole stage run: {common.describe_buckets(profile, 4)}; "
            f"our own layer (rows, shards, fsync, consolidation) {ours:.0%} of it. Both sort prompts by length "
            f"before batching")


def main(argv=None) -> dict:
    args, size, started = common.start(__doc__, argv, SIZES)
    repeats = args.repeats or size["repeats"]
    with tempfile.TemporaryDirectory(prefix="rf-bench-gen-") as tmp, common.stdout_to_stderr():
        work = Path(tmp)
        model_dir = common.save_tiny_model(work / "model", size["model"])
        problems = [row["problem"] for row in skewed_traces(size["prompts"], seed=2)]
        data = work / "prompts.jsonl"
        data.write_text("".join(json.dumps({"id": f"p{i}", "problem": p}) + "\n" for i, p in enumerate(problems)))
        runs = {"ours": [], "baseline": []}
        for r in range(repeats):
            runs["ours"].append(run_ours(work / f"ours{r}", model_dir, data, size))
            runs["baseline"].append(run_baseline(model_dir, problems, size))
        profile = profile_ours(work / "profile", model_dir, data, size)
    best = {side: max(runs[side], key=lambda run: run["tokens_per_s"]) for side in runs}
    ratio = best["ours"]["tokens_per_s"] / best["baseline"]["tokens_per_s"]
    figures = {"ours": best["ours"], "baseline": best["baseline"], "runs": runs,
               "end_to_end_ratio": round(best["ours"]["end_to_end_tokens_per_s"]
                                         / best["baseline"]["end_to_end_tokens_per_s"], 3),
               "setup": {"prompts": len(problems), "batch_size": size["batch"], "max_new_tokens": size["new_tokens"],
                         **SAMPLING, "top_k": 0, "model": size["model"]}}
    return common.finish("generate_throughput", args, started, figures=figures, ratio=ratio,
                         headline=("generated tokens/s", best["ours"]["tokens_per_s"],
                                   best["baseline"]["tokens_per_s"]),
                         target=f"ratio >= {TARGET} (generated tokens/s, ours / hand-written generate loop)",
                         met=ratio >= TARGET,
                         baseline="hand-written loop: render the chat prompts, sort them by length, then per batch "
                                  "(same batch size): tokenize (left padding), model.generate(do_sample, same "
                                  "temperature/top_p, top_k=0, max_new_tokens), batch_decode",
                         limits=explain(profile), profile=profile)


if __name__ == "__main__":
    main()
