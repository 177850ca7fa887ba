"""The `generate` stage: sample chains of thought from a teacher, exactly once per (prompt, sample), resumably.

    teacher_traces:
      kind: generate
      data: {from: problems, split: train}     # or a hub id, a local jsonl/parquet/arrow, {released: NAME}
      model: deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B
      backend: transformers                     # transformers | vllm | openai | procedural
      prompt_template: "{problem}\\nPlease reason step by step, and put your final answer within \\\\boxed{}."
      prefill: "<think>\\n"
      n: 4
      temperature: 0.6
      top_p: 0.95
      max_new_tokens: 4096
      batch_size: 32
      options: {dtype: bfloat16}               # the backend's own settings (see OPTIONS)

What it does: fill the template from each source row, add the system prompt, render the chat template of the
teacher's tokenizer and append the prefill; give each prompt a stable id (the data's `id` column, else a hash of
the prompt text); sort prompts by length and cut them into batches of `batch_size`, batch b seeded with seed + b;
skip every (id, sample_index) already in `shards/` and append the rest there, fsynced batch by batch; finally write
`dataset/` (canonical trace schema + teacher + sampling + the source's other columns, ordered by id and
sample_index). A rerun after Ctrl-C, kill -9 or a failed endpoint finishes what is missing and nothing twice.
The ledger gets the parameters (local models), the prompt tokens and the generated tokens of this attempt (a
greedy sample copied n times is counted once: it was computed once).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Literal

from pipeline.generation.prompts import DEFAULT_TEMPLATE
from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef, ModelRef
from pipeline.run.registry import register_stage

# The backend settings a recipe may put under `options:` (vllm: any vllm.LLM engine argument).
OPTIONS = {
    "transformers": {"dtype", "tokenizer"},
    "openai": {"base_url", "api_key_env", "chat", "tokenizer", "concurrency", "timeout_s", "max_retries", "backoff_s",
               "max_backoff_s", "extra_body", "transport"},
    "procedural": {"tokenizer"},
    "vllm": None,
}
RESERVED_VLLM = {"model", "seed", "name", "add_special_tokens", "trust_remote_code"}
DEFAULT_BATCH = {"transformers": 32, "vllm": 1024, "procedural": 1024}


@dataclass
class GenerateStage:
    data: DataRef  # prompts: a hub id, a local file or folder, {from: STAGE, split: ...}, {released: NAME}
    model: ModelRef | None = None  # the teacher (openai: the served model name); none for procedural
    backend: Literal["transformers", "vllm", "openai", "procedural"] = "transformers"
    prompt_template: str = DEFAULT_TEMPLATE  # {column} fields; "{problem}" for tiny char-level models
    system_prompt: str | None = None
    prefill: str = ""  # appended after the generation prompt, e.g. "<think>\n"; part of the response
    chat_template: bool = True  # false: the prompt is the filled template itself (base models, raw completion)
    n: int = 1  # samples per prompt
    temperature: float = 0.6  # 0 = greedy (the n samples are then copies)
    top_p: float = 0.95
    max_new_tokens: int = 512
    stop: list[str] = field(default_factory=list)  # stop strings, removed from the text (eos always stops)
    seed: int | None = None  # default: the recipe's seed
    limit: int | None = None  # the first `limit` prompts of the data
    id_column: str | None = "id"  # the data's id column; prompts without one are id'd by a hash of their text
    batch_size: int | None = None  # prompts per generate call (and per fsync); default by backend
    options: dict = field(default_factory=dict)  # the backend's own settings; see OPTIONS

    def __post_init__(self):
        from pipeline.generation import SamplingParams

        SamplingParams(self.n, self.temperature, self.top_p, self.max_new_tokens, 0, list(self.stop))
        if self.backend == "procedural" and self.model is not None:
            raise ValueError("model: the procedural backend writes the rows' reference solutions and uses no "
                             "model; remove model:")
        if self.backend != "procedural" and self.model is None:
            raise ValueError(f"model: the {self.backend} backend needs a model (a hub id, a path, {{from: STAGE}}"
                             + ("; for openai, the name the server serves" if self.backend == "openai" else "") + ")")
        if self.model is not None and self.model.init and self.backend != "transformers":
            raise ValueError(f"model: the {self.backend} backend needs a saved model, not {{init: tiny}}")
        for name, value in (("limit", self.limit), ("batch_size", self.batch_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer or null, got {value}")
        _check_options(self.backend, self.options)


def _check_options(backend: str, options: dict) -> None:
    import difflib

    if "api_key" in options:
        raise ValueError("options.api_key: never put a key in a recipe; set api_key_env: NAME_OF_AN_ENV_VARIABLE")
    valid = OPTIONS[backend]
    bad = [k for k in options if (k not in valid if valid is not None else k in RESERVED_VLLM)]
    if bad:
        if valid is None:
            raise ValueError(f"options.{bad[0]} is set by the stage itself for vllm; use the stage's own field")
        close = difflib.get_close_matches(bad[0], sorted(valid), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"valid for {backend}: {', '.join(sorted(valid))}"
        raise ValueError(f"options.{bad[0]} is not an option of the {backend} backend; {hint}")


@register_stage("generate", GenerateStage, help="sample chains of thought from a teacher (resumable JSONL shards)")
def run(cfg: GenerateStage, ctx: StageContext) -> StageResult:
    """Sample n completions per prompt into shards, then consolidate them into a canonical trace dataset."""
    from pipeline.data.templates import check_template
    from pipeline.generation import SamplingParams
    from pipeline.generation.prompts import build_units, output_features, passthrough_columns

    data = ctx.load_dataset(cfg.data)
    if cfg.limit is not None:
        data = data.select(range(min(cfg.limit, len(data))))
    if len(data) == 0:
        raise ValueError(f"data: {cfg.data.describe()} has no rows to generate from")
    check_template(cfg.prompt_template, data.column_names)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    params = SamplingParams(cfg.n, cfg.temperature, cfg.top_p, cfg.max_new_tokens, seed, list(cfg.stop))
    backend = _make_backend(cfg, ctx)
    try:
        units, repeats = build_units(data, template=cfg.prompt_template, system_prompt=cfg.system_prompt,
                                     prefill=cfg.prefill, id_column=cfg.id_column, backend=backend,
                                     chat_template=cfg.chat_template)
        ctx.log.info("%d prompts x %d samples from %s with %s (%d repeated prompts dropped)", len(units), cfg.n,
                     cfg.data.describe(), backend.name, repeats)
        passthrough = passthrough_columns(data.column_names)
        stats = _generate_all(units, backend, params, cfg, ctx, passthrough)
    finally:
        backend.close()
    dataset = _consolidate(ctx, output_features(data.features, passthrough))
    expected = len(units) * cfg.n
    if len(dataset) != expected:
        raise RuntimeError(f"generate: {len(dataset)} rows in shards/ but {expected} expected; rerun the stage")
    finish = collections.Counter(dataset["finish_reason"])
    metrics = {"rows": len(dataset), "prompts": len(units), "samples_per_prompt": cfg.n,
               "repeated_prompts_dropped": repeats, "teacher": backend.name, **stats,
               "finish_reasons": dict(sorted(finish.items())),
               "length_fraction": round(finish.get("length", 0) / max(1, len(dataset)), 4)}
    ctx.write_json("generation.json", metrics)
    ctx.log.info("%d rows (%d new, %d from earlier attempts), %s tokens/s, finish reasons %s", len(dataset),
                 stats["new_rows"], stats["resumed_rows"], stats["tokens_per_s"], metrics["finish_reasons"])
    return StageResult(dataset="dataset", metrics=metrics)


def _make_backend(cfg: GenerateStage, ctx: StageContext):
    from pipeline.generation import make_backend

    options = dict(cfg.options)
    if cfg.backend == "procedural":
        return make_backend("procedural", **options)
    batch = {"batch_size": cfg.batch_size or DEFAULT_BATCH["transformers"]}
    if cfg.backend == "transformers":
        from pipeline.generation.hf import to_best_device

        tokenizer_source = options.pop("tokenizer", None)
        model, tokenizer = ctx.load_model(cfg.model, **({"dtype": options.pop("dtype")} if "dtype" in options else {}))
        if tokenizer_source:
            from pipeline.training.models import load_tokenizer

            tokenizer = load_tokenizer(tokenizer_source)
        return make_backend("transformers", model=to_best_device(model), tokenizer=tokenizer,
                            name=f"transformers:{cfg.model.describe()}", **batch)
    source = ctx.resolve_model(cfg.model)
    name = f"{cfg.backend}:{cfg.model.describe()}"
    if cfg.backend == "vllm":
        return make_backend("vllm", model=source, seed=ctx.seed if cfg.seed is None else cfg.seed, name=name,
                            trust_remote_code=cfg.model.trust_remote_code, **options)
    return make_backend("openai", model=source, name=name, **options)


def _batch_size(cfg: GenerateStage, backend) -> int:
    if cfg.batch_size:
        return cfg.batch_size
    if cfg.backend == "openai":
        return 4 * backend.concurrency  # enough requests in flight; a failed batch loses at most this many
    return DEFAULT_BATCH[cfg.backend]


def _generate_all(units, backend, params, cfg: GenerateStage, ctx: StageContext, passthrough) -> dict:
    """Generate every missing (id, sample_index) batch by batch into shards/; returns this attempt's counts."""
    from tqdm import tqdm

    from pipeline.generation.prompts import trace_from_completion
    from pipeline.run.shards import ShardStore

    ordered = sorted(units, key=lambda u: u.sort_key())
    size, sampling, counts = _batch_size(cfg, backend), params.to_dict(), collections.Counter()
    if backend.parameters:  # a local transformers model: its shape too, for the attention FLOPs
        from pipeline.run.compute import shape_of

        model = getattr(backend, "model", None)
        ctx.ledger.add(params=backend.parameters, model=shape_of(model) if model is not None else None)
    start = time.time()
    with ShardStore(ctx.stage_dir / "shards") as store, tqdm(
            total=len(units) * cfg.n, unit="sample", desc=f"generate {ctx.name}", dynamic_ncols=True,
            disable=not ctx.is_main_process) as bar:
        resumed = sum(1 for u in units for j in range(cfg.n) if (u.id, j) in store.done)
        bar.update(resumed)
        for b, first in enumerate(range(0, len(ordered), size)):
            todo = [u for u in ordered[first:first + size] if any((u.id, j) not in store.done for j in range(cfg.n))]
            if not todo:
                continue
            completions = backend.generate([u.prompt for u in todo], _with_seed(params, params.seed + b),
                                           rows=[u.row for u in todo])
            rows = [trace_from_completion(u, j, c, teacher=backend.name, sampling=sampling, passthrough=passthrough)
                    for u, samples in zip(todo, completions) for j, c in enumerate(samples)
                    if (u.id, j) not in store.done]
            # Into the ledger batch by batch, so a failed or interrupted attempt still accounts for its work; before
            # the write, so a kill between the two counts a batch the next attempt redraws twice (it was computed
            # twice) rather than never.
            ctx.ledger.add(**_count(rows, counts, greedy=params.greedy, model=cfg.backend != "procedural"))
            bar.update(store.write(rows))
            bar.set_postfix(tok_s=f"{counts['tokens_generated'] / max(1e-9, time.time() - start):.0f}")
    seconds = time.time() - start
    return {"new_rows": counts["rows"], "resumed_rows": resumed, "tokens_generated": counts["tokens_generated"],
            "tokens_prompt": counts["tokens_prompt"], "generation_s": round(seconds, 3),
            "tokens_per_s": round(counts["tokens_generated"] / seconds, 1) if seconds > 0 else None}


def _with_seed(params, seed: int):
    from dataclasses import replace

    return replace(params, seed=seed)


def _count(rows: list[dict], counts: collections.Counter, greedy: bool, model: bool) -> dict:
    """Tally the rows written and the tokens a model computed for them (a greedy copy was computed once; the
    procedural backend computes nothing); returns this batch's tokens for the ledger."""
    counts["rows"] += len(rows)
    computed = [r for r in rows if model and not (greedy and r["sample_index"] > 0)]
    batch = {"tokens_generated": sum(r["completion_tokens"] or 0 for r in computed),
             "tokens_prompt": sum(r["prompt_tokens"] or 0 for r in computed)}
    counts.update(batch)
    return {**batch, "sequences": len(computed)}  # per-sequence lengths for the attention FLOPs


def _consolidate(ctx: StageContext, features):
    """shards/ -> dataset/ (atomically), one row per (id, sample_index), sorted by them. The rows stream from the
    shards into an Arrow file in a scratch folder, so the table never has to fit in memory as Python objects."""
    import shutil
    import tempfile

    import datasets

    scratch = tempfile.mkdtemp(dir=ctx.stage_dir, prefix=".consolidate.", suffix=".tmp")
    try:
        table = datasets.Dataset.from_generator(_shard_rows, gen_kwargs={"folder": str(ctx.stage_dir / "shards")},
                                                features=features, cache_dir=scratch)
        # Sorting the keys here (not Dataset.sort, whose pyarrow call warns on every run) costs two columns only.
        keys = list(zip(table["id"], table["sample_index"]))
        table = table.select(sorted(range(len(keys)), key=keys.__getitem__))
        ctx.save_dataset(table, "dataset")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return datasets.load_from_disk(str(ctx.stage_dir / "dataset"))


def _shard_rows(folder: str):
    from pipeline.run.shards import read_shards

    yield from read_shards(folder)
