"""Each stage's full-scale cost from a rehearsal's measurements (formulas in projection.py).

Rows flow down the recipe as they would at full scale: a data source's full size (recipe limit, card size or hub
info), a generate stage's prompts x samples, a curate stage's input x the fraction its steps kept on the sampled
rows (1.0, stated, when the rows were a random model's samples), so a stage that reads `{from: X}` inherits X's.
"""

from __future__ import annotations

from statistics import mean

from pipeline.rehearsal import projection
from pipeline.rehearsal.projection import StageCost

KINDS_WITHOUT_DEVICE = ("curate", "tasks", "preferences", "report")


def stage_cost(m, spec) -> StageCost:
    cost = StageCost(spec.name, spec.kind, rows=_input_rows(m, spec))
    real = m.reh.real.get(spec.name, {})
    handler = {"sft": _sft, "grpo": _grpo, "generate": _generate, "evaluate": _evaluate, "curate": _curate,
               "reward_model": _reward_model}.get(spec.kind)
    if handler is None:
        if spec.kind not in KINDS_WITHOUT_DEVICE:
            cost.assumptions.append(f"no projection for stage kind {spec.kind}")
        m.rows_out[spec.name] = cost.rows
        return cost
    return handler(m, spec, cost, real)


def _input_rows(m, spec) -> int | None:
    body = m.reh.original["stages"][spec.name]
    data = body.get("data")
    if data is None:
        return None
    refs = data if isinstance(data, list) else [data]
    total = 0
    for i, ref in enumerate(refs):
        if isinstance(ref, dict) and "from" in ref:
            rows = m.rows_out.get(ref["from"])
        else:
            key = f"{spec.name}.data" + (f"[{i}]" if isinstance(data, list) else "")
            rows = m.reh.sources.get(key, {}).get("full_rows")
        if rows is None:
            return None
        total += int(rows)
    return total


def _shape(m, ref, cost: StageCost):
    """The full-size FLOPs shape of the model a reference names (its real config, or the stage that trained it)."""
    if getattr(ref, "stage", None):
        return m.shapes.get(ref.stage, projection.shape(None))
    path = getattr(ref, "path", None) or (ref if isinstance(ref, str) else None)
    for info in m.reh.models.values():
        if info["folder"] == path:
            return projection.shape(info["shape_full"])
    cost.assumptions.append("a tiny or stand-in model: no full-scale FLOPs")
    return projection.shape(None)


def _sft(m, spec, cost, real):
    shape = _shape(m, spec.config.model, cost)
    m.shapes[spec.name] = shape
    limit = real.get("max_length")
    lengths = [min(n, limit) if limit else n for n in m.lengths(spec)]
    if real.get("max_examples") and cost.rows:
        cost.rows = min(cost.rows, int(real["max_examples"]))
    if cost.rows is None:
        cost.assumptions.append("full row count unknown")
    return projection.sft_cost(cost, shape, lengths, real)


def _grpo(m, spec, cost, real):
    params = _shape(m, spec.config.model, cost)
    m.shapes[spec.name] = params
    tokenizer = m.tokenizer(spec)
    prompts = m.grpo_rows(spec)["prompt"]
    tokens = [len(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)
                  ["input_ids"]) for p in prompts]
    return projection.grpo_cost(cost, params, mean(tokens) if tokens else 0.0, real)


def _generate(m, spec, cost, real):
    n = int(real.get("n") or 1)
    if m.reh.original["stages"][spec.name].get("backend") == "openai":
        cost.assumptions.append("an endpoint: the provider bills tokens; no device time here")
        params = projection.shape(None)
    else:
        params = _shape(m, spec.config.model, cost)
    rows = cost.rows if real.get("limit") is None or cost.rows is None else min(cost.rows, int(real["limit"]))
    cost.rows = rows
    m.rows_out[spec.name] = rows * n if rows is not None else None
    prompt = _prompt_tokens(m, spec)
    return projection.sampling_cost(cost, params, prompt, (rows or 0) * n, int(real.get("max_new_tokens") or 512))


def _evaluate(m, spec, cost, real):
    samples_per_model = 0
    for bench in real.get("benchmarks") or []:
        bench = {"benchmark": bench} if isinstance(bench, str) else bench
        rows = bench.get("limit") or projection.NAMED_BENCHMARK_ROWS.get(str(bench.get("benchmark")), 0)
        samples_per_model += int(rows) * int(bench.get("n") or 4)
    budget = int(real.get("max_new_tokens") or 32768)
    total = StageCost(spec.name, spec.kind, rows=samples_per_model)
    for ref in spec.config.models:
        one = projection.sampling_cost(StageCost(spec.name, spec.kind), _shape(m, ref, cost), 150.0,
                                       samples_per_model, budget)
        total.tokens_generated += one.tokens_generated
        total.tokens_forward += one.tokens_forward
        total.flops += one.flops
        total.device_hours += one.device_hours
        total.assumptions = one.assumptions
    total.assumptions = cost.assumptions + total.assumptions + ["prompts assumed 150 tokens"]
    return total


def _curate(m, spec, cost, real):
    from pipeline.run import artifacts

    metrics = artifacts.read_json(m.recipe.run_dir / spec.name / "metrics.json") or {}
    funnel = artifacts.read_json(m.recipe.run_dir / spec.name / "funnel.json") or {}
    kept_all = any("rehearsal_kept_rows" in step for step in funnel.get("steps", []))
    fraction = 1.0 if kept_all else metrics.get("kept_fraction") or 1.0
    if kept_all:
        cost.assumptions.append("a step dropped every sampled row (random-model samples): full-scale keep rate "
                                "assumed 100%")
    else:
        cost.assumptions.append(f"keeps {fraction:.0%} of rows, as on the sampled rows")
    m.rows_out[spec.name] = int(cost.rows * fraction) if cost.rows is not None else None
    return cost


def _reward_model(m, spec, cost, real):
    params = _shape(m, spec.config.model, cost)
    m.shapes[spec.name] = params
    cost.assumptions.append("pairs assumed 600 tokens per side")
    return projection.reward_model_cost(cost, params, 600.0, real)


def _prompt_tokens(m, spec) -> float:
    """Mean tokens of the sampled rows' problem text (the chat template adds a few more)."""
    tokenizer = m.tokenizer(spec) if spec.config.model is not None else None
    data = m.context(spec).load_dataset(spec.config.data)
    column = next((c for c in ("problem", "prompt", "question") if c in data.column_names), None)
    if tokenizer is None or column is None:
        return 150.0
    return mean(len(tokenizer(str(text), add_special_tokens=False)["input_ids"]) for text in data[column]) + 20
