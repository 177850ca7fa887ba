"""A recipe, as written, turned into its rehearsal: the same stages in the same order, at toy scale.

Operates on the plain YAML mapping before it is typed, so the rehearsal then loads, validates, fingerprints and runs
through exactly the code a real run uses. What changes, and only this:
- the run dir: `<run_dir>.rehearsal`, never sharing a cache with the real run;
- models given by hub id or path: rebuilt shrunk from their own config and tokenizer (`shrink.py`);
- data: every source cut to its first rows (hub datasets streamed, never downloaded whole);
- trainers: a few steps, a checkpoint every step; batch, lengths and sample counts small; no vLLM;
- backends: vLLM -> transformers, an OpenAI-compatible endpoint -> a tiny local stand-in (each with a note);
- `launch:` -> 2 CPU processes (plain DDP over gloo), or in-process when launches are off;
- guardrails warn instead of stopping, reports never fail the run (random weights miss every claim).
Each stand-in is recorded as one line in `notes`, printed with the rehearsal's table.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.rehearsal.shrink import shrink_model

ROWS = 16  # rows kept of every data source
EVAL_PROBLEMS = 2  # problems per benchmark
MAX_NEW_TOKENS = 16
TRAIN_LENGTH = 256  # tokens a rehearsal trains on; the real max_length is checked, not used
TRAINER = {"max_steps": 2, "save_strategy": "steps", "save_steps": 1, "save_total_limit": None,
           "logging_steps": 1, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 2,
           "gradient_accumulation_steps": 1, "bf16": False, "fp16": False, "report_to": "none",
           "disable_tqdm": True, "eval_strategy": "no", "dataloader_num_workers": 0}
GPU_ONLY = ("packing", "padding_free", "use_vllm", "use_liger_kernel", "torch_compile", "generation_batch_size",
            "steps_per_generation", "packing_strategy")
MODEL_KEYS = ("model", "teacher", "student")
DATA_KEYS = ("data", "eval_data")


@dataclass
class Rehearsal:
    raw: dict  # the rehearsal recipe (plain YAML)
    original: dict  # the recipe as written
    notes: list[str] = field(default_factory=list)  # stand-ins, one line each
    models: dict[str, dict] = field(default_factory=dict)  # source as written -> shrink info
    sources: dict[str, dict] = field(default_factory=dict)  # "stage.key" -> {rows, full_rows, file}
    real: dict[str, dict] = field(default_factory=dict)  # stage -> the real values a check needs (max_length, ...)
    keep_rows: list[str] = field(default_factory=list)  # curate stages that read a random model's samples


def rehearsal_recipe(raw: dict, size: dict, launches: bool = True, rows: int = ROWS) -> Rehearsal:
    """The rehearsal of a raw recipe mapping; builds the shrunk models and data cuts it points at."""
    reh = Rehearsal(raw=copy.deepcopy(raw), original=raw)
    run_dir = Path(str(raw.get("run_dir") or f"runs/{raw['name']}") + ".rehearsal")
    reh.raw["run_dir"] = str(run_dir)
    work = run_dir / "_rehearsal"
    for name, body in reh.raw["stages"].items():
        if not isinstance(body, dict):
            continue
        kind = body.get("kind", name)
        reh.real[name] = _real_values(body)
        if kind == "curate" and _reads_samples(body, reh.raw["stages"]):
            reh.keep_rows.append(name)
            reh.notes.append(f"{name}: reads a random model's samples, which never verify: a step that would drop "
                             f"every row keeps them instead, so later stages are rehearsed")
        _stage(reh, name, kind, body, work, size, launches, rows)
    return reh


def _stage(reh: Rehearsal, name: str, kind: str, body: dict, work: Path, size: dict, launches: bool, rows: int):
    if kind == "generate" and body.get("backend") == "openai":
        _endpoint_stand_in(reh, name, body)
    for key in MODEL_KEYS:
        if key in body:
            body[key] = _model(reh, body[key], work, size, f"{name}.{key}")
    if isinstance(body.get("models"), list):
        body["models"] = [_model(reh, m, work, size, f"{name}.models") for m in body["models"]]
    for key in DATA_KEYS:
        if key in body:
            body[key] = _data(reh, body[key], work, rows, f"{name}.{key}")
    for reward in body.get("rewards") or []:
        if isinstance(reward, dict) and "model" in reward:
            reward["model"] = _model(reh, reward["model"], work, size, f"{name}.rewards")
            reward.pop("device", None)
    if isinstance(body.get("trainer"), dict):
        body["trainer"] = _trainer(reh, name, kind, body["trainer"])
    _sampling(reh, name, kind, body)
    if "launch" in body:
        _launch(reh, name, body, launches)
    if kind == "grpo":
        body["guardrails"] = {**(body.get("guardrails") or {}), "action": "warn"}
    if kind == "report":
        body["fail_on_miss"] = False


def _reads_samples(body: dict, stages: dict) -> bool:
    data = body.get("data")
    source = data.get("from") if isinstance(data, dict) else None
    upstream = stages.get(source) if source else None
    return isinstance(upstream, dict) and upstream.get("kind", source) == "generate"


def _real_values(body: dict) -> dict:
    trainer = body.get("trainer") if isinstance(body.get("trainer"), dict) else {}
    keys = ("max_length", "max_completion_length", "num_generations", "num_train_epochs", "max_steps",
            "per_device_train_batch_size", "gradient_accumulation_steps", "max_new_tokens", "beta", "num_iterations")
    real = {k: trainer[k] for k in keys if k in trainer}
    for k in ("max_new_tokens", "n", "limit", "eos_token", "max_examples"):
        if k in body:
            real.setdefault(k, body[k])
    real["launch"] = body.get("launch")
    if isinstance(body.get("benchmarks"), list):
        real["benchmarks"] = copy.deepcopy(body["benchmarks"])
    return real


def _model(reh: Rehearsal, value, work: Path, size: dict, where: str):
    """A hub id or local folder -> the shrunk copy's folder; {from:}/{init:} refs unchanged."""
    source = value if isinstance(value, str) else value.get("path") if isinstance(value, dict) else None
    if not source or (isinstance(value, dict) and ("from" in value or "init" in value)):
        return value
    if source not in reh.models:
        remote = bool(isinstance(value, dict) and value.get("trust_remote_code"))
        folder = work / "models" / _slug(source)
        reh.models[source] = shrink_model(source, folder, size, trust_remote_code=remote)
    local = reh.models[source]["folder"]
    return local if isinstance(value, str) else {**value, "path": local}


def _data(reh: Rehearsal, value, work: Path, rows: int, where: str):
    """Every data source cut to its first `rows` rows; lists (mixtures) item by item."""
    from pipeline.rehearsal.sources import cut_source

    if isinstance(value, list):
        return [_data(reh, v, work, rows, f"{where}[{i}]") for i, v in enumerate(value)]
    ref = {"path": value} if isinstance(value, str) else dict(value)
    if "from" in ref:
        return value
    ref, info = cut_source(ref, work / "data", rows)
    reh.sources[where] = info
    return ref


def _trainer(reh: Rehearsal, name: str, kind: str, trainer: dict) -> dict:
    out = {k: v for k, v in trainer.items() if k not in GPU_ONLY and not k.startswith("vllm_")}
    dropped = sorted(set(trainer) - set(out))
    if dropped:
        reh.notes.append(f"{name}: {', '.join(dropped)} left out (GPU-only; the real run uses them)")
    out.update(TRAINER)
    out.pop("num_train_epochs", None)
    if "max_length" in trainer or kind in ("sft", "reward_model"):
        out["max_length"] = min(int(trainer.get("max_length") or TRAIN_LENGTH), TRAIN_LENGTH)
    if kind == "grpo":
        out.update(num_generations=2, max_completion_length=MAX_NEW_TOKENS, use_vllm=False)
    if kind == "distill":
        out.update(max_new_tokens=MAX_NEW_TOKENS)
    if "warmup_steps" in out and isinstance(out["warmup_steps"], int) and out["warmup_steps"] >= 1:
        out["warmup_steps"] = 0
    return out


def _sampling(reh: Rehearsal, name: str, kind: str, body: dict) -> None:
    """Few short samples; vLLM's engine replaced by transformers' generate (same prompts, same stop tokens)."""
    if kind not in ("generate", "evaluate", "preferences"):
        return
    for key in ("max_new_tokens", "answer_max_new_tokens"):
        if key in body or (key == "max_new_tokens" and kind != "preferences"):
            body[key] = MAX_NEW_TOKENS
    if kind == "generate":
        body["n"] = min(int(body.get("n") or 1), 2)
        if body.get("limit") is not None:
            body["limit"] = min(int(body["limit"]), ROWS)
    if body.get("backend") == "vllm":
        reh.notes.append(f"{name}: vLLM -> transformers generate (vLLM needs a GPU and its own environment)")
        body["backend"] = "transformers"
        body.pop("backend_options", None) if kind == "evaluate" else body.pop("options", None)
    if kind == "evaluate":
        body["budgets"] = [min(int(b), MAX_NEW_TOKENS) for b in body.get("budgets") or []]
        body["benchmarks"] = [_benchmark(b) for b in body.get("benchmarks") or []]


def _benchmark(spec):
    spec = {"benchmark": spec} if isinstance(spec, str) else dict(spec)
    spec["n"] = min(int(spec.get("n") or 1), 2)
    spec["k"] = [k for k in spec.get("k") or [1] if k <= spec["n"]] or [1]
    spec["limit"] = min(int(spec.get("limit") or EVAL_PROBLEMS), EVAL_PROBLEMS)
    return spec


def _endpoint_stand_in(reh: Rehearsal, name: str, body: dict) -> None:
    """An endpoint is never contacted in a rehearsal: a tiny local model samples in its place."""
    reh.notes.append(f"{name}: the OpenAI-compatible endpoint ({body.get('model')}) is not contacted; a tiny local "
                     f"model stands in (the request path is proven by tests/test_generate.py's local server)")
    body["backend"] = "transformers"
    body["model"] = {"init": "tiny"}
    body.pop("options", None)


def _launch(reh: Rehearsal, name: str, body: dict, launches: bool) -> None:
    launch = body.pop("launch") or {}
    config = launch.get("config")
    if not launches:
        reh.notes.append(f"{name}: launch: run in-process (launches off)")
        return
    body["launch"] = {"num_processes": 2}
    what = f"accelerate config {config}" if config else "its launch"
    reh.notes.append(f"{name}: {what} -> plain DDP on 2 CPU processes (gloo); ZeRO/FSDP sharding needs GPUs and the "
                     f"deepspeed extra, so it is not rehearsed")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text.strip("/"))[-80:]


def write_recipe(reh: Rehearsal, path: Path) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# A rehearsal recipe written by `reasonforge run --rehearse`; do not edit.\n" +
                    yaml.safe_dump(reh.raw, sort_keys=False))  # YAML, not JSON: a bare `on:` key stays True
    return path
