"""The `curate` stage: verify, filter, dedup, decontaminate and select traces; writes the dataset with its card.

    curate:
      data: {from: generate}
      steps:
        - {step: decontaminate, benchmarks: [math500, aime24, amc23, gsm8k]}
        - {step: filter, max_tokens: 16000}
        - {step: dedup, on: problem}
        - {step: verify}                       # accuracy == 1 and think_format == 1
        - {step: select, min_pass_rate: 0.1, max_pass_rate: 0.9, keep: shortest, per_prompt: 2}
      card: {license: apache-2.0, pretty_name: My traces}
      allow_empty: false                       # true: keeping no row is a result, not an error

Before any step runs, the data must have the columns the steps read (problem, response, a dedup's `on`, ...): a
file of {question, answer} rows would otherwise flow through and come out as 0 rows. A curate that keeps no row
fails (funnel.json, written first, says which step dropped them) unless `allow_empty: true`.

Outputs: `dataset/` (a save_to_disk folder in the canonical schema, plus the columns the steps write: score,
verified, pass_rate) holding README.md (the dataset card), card.json and length_histogram.png; `funnel.json`.
The steps see every column but `messages` (a rendering of problem and response, and the widest column): the saved
dataset is the input's own rows, selected by index, with the written columns replaced, so no column is re-encoded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from pipeline.data.errors import DataError
from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef, parse_data_ref
from pipeline.run.registry import register_stage

# Cheap steps first, so the math verifier (the slow one) judges fewer rows. Pass rates are then counted over the
# samples that survived the filter; put verify first when you select by pass rate and truncations should count.
DEFAULT_STEPS = (
    {"step": "decontaminate", "benchmarks": ["math500", "aime24", "amc23", "gsm8k"]},
    {"step": "filter"},
    {"step": "dedup", "on": "problem"},
    {"step": "verify"},
)
CARD_KEYS = ("license", "language", "pretty_name", "tags", "task_categories")
_INDEX = "_curate_index"  # the input row each working row came from
_NOT_FOR_STEPS = ("messages",)


@dataclass
class CurateStage:
    data: DataRef  # the traces (canonical schema)
    steps: list[dict] = field(default_factory=lambda: copy.deepcopy(list(DEFAULT_STEPS)))  # {step: NAME, **params}
    card: dict = field(default_factory=dict)  # dataset card front matter overrides: license, language, pretty_name
    allow_empty: bool = False  # keeping no row is fine (else the stage fails, naming the step that dropped them)

    def __post_init__(self):
        from pipeline.curation import normalize_step, validate_steps

        if not isinstance(self.data, DataRef):
            self.data = parse_data_ref(self.data)
        validate_steps(self.steps)
        self.steps = [normalize_step(spec) for spec in self.steps]  # YAML reads a bare `on:` key as True
        if not isinstance(self.card, dict):
            raise TypeError("card must be a mapping like {license: apache-2.0, pretty_name: My traces}")
        for key in self.card:
            if key not in CARD_KEYS:
                raise ValueError(f"card: unknown key '{key}'; valid: {', '.join(CARD_KEYS)}")


@register_stage("curate", CurateStage,
                help="verify, filter, dedup, decontaminate and select traces; writes a dataset card")
def run(cfg: CurateStage, ctx: StageContext) -> StageResult:
    from pipeline.curation import run_steps
    from pipeline.data import dataset_card as cards
    from pipeline.rehearsal import keeps_rows

    data = _one_split(ctx.load_dataset(cfg.data))
    check_columns(data.column_names, cfg.steps, cfg.data.describe())
    keep = [c for c in data.column_names if c not in _NOT_FOR_STEPS]
    rows = data.select_columns(keep).to_list()
    for i, row in enumerate(rows):
        row[_INDEX] = i
    rows, funnel = run_steps(rows, _resolve_stage_benchmarks(cfg.steps, ctx), seed=ctx.seed, log=ctx.log,
                             keep_when_empty=keeps_rows(ctx.name))
    out = _assemble(data, rows, funnel["columns_written"])
    ctx.write_json("funnel.json", funnel)
    if not len(out) and not cfg.allow_empty:
        raise DataError(cfg.data.describe(), "rows", f"curate kept 0 of {funnel['rows_in']} rows ({_drops(funnel)})",
                        f"loosen the steps (see {ctx.stage_dir / 'funnel.json'}), or set allow_empty: true")
    if len(out):
        ctx.save_dataset(out, "dataset")
    else:
        _save_empty(out, ctx)
    ctx.ledger.add(rows_processed=funnel["rows_in"])
    lineage = _lineage(ctx, cfg)
    cards.write_card(ctx.stage_dir / "dataset", funnel=funnel, provenance=_provenance(cfg, ctx, lineage),
                     cost=_costs(ctx, lineage), overrides=cfg.card)
    ctx.log.info("curate: %d -> %d rows", funnel["rows_in"], funnel["rows_out"])
    return StageResult(dataset="dataset", report="funnel.json", metrics=_metrics(funnel))


def required_columns(steps: list[dict]) -> dict[str, str]:
    """{column: the step that reads it} for the columns a curate cannot do without."""
    needed = {"problem": "curate", "response": "curate"}
    for spec in steps:
        name = spec["step"]
        column = {"decontaminate": spec.get("column", "problem"), "dedup": spec.get("on", "problem"),
                  "select": spec.get("stratify_by")}.get(name)
        if column:
            needed.setdefault(column, name)
        if name == "verify" and not spec.get("rewards"):
            needed.setdefault("gold_answer", "verify (its accuracy reward)")
    return needed


def check_columns(columns: list[str], steps: list[dict], source: str) -> None:
    """DataError naming the first column the steps read that the data lacks."""
    for column, step in required_columns(steps).items():
        if column not in columns:
            raise DataError(source, f"column {column}", f"missing; {step} reads it (the data has: {', '.join(columns)})",
                            f"rename a column with data: {{..., columns: {{THEIRS: {column}}}}}, or produce traces in "
                            "the canonical schema (pipeline/data/schema.py)")


def _drops(funnel: dict) -> str:
    dropped = [f"{step['step']} dropped {sum(step['dropped'].values())}" for step in funnel["steps"]
               if sum(step["dropped"].values())]
    return ", ".join(dropped) or "the input had none"


def _resolve_stage_benchmarks(steps: list[dict], ctx: StageContext) -> list[dict]:
    """decontaminate against an earlier stage's split: benchmarks: {test: {from: problems, split: test}} becomes
    that split's problems, so a recipe can hold out its own test set."""
    from pipeline.run.refs import parse_data_ref

    resolved = []
    for step in steps:
        benchmarks = step.get("benchmarks")
        if step.get("step") == "decontaminate" and isinstance(benchmarks, dict):
            benchmarks = {name: (list(ctx.load_dataset(parse_data_ref(src))["problem"])
                                 if isinstance(src, dict) and "from" in src else src)
                          for name, src in benchmarks.items()}
            step = {**step, "benchmarks": benchmarks}
        resolved.append(step)
    return resolved


def _one_split(data):
    import datasets

    if not isinstance(data, datasets.DatasetDict):
        return data
    if len(data) == 1 or "train" in data:
        return data["train"] if "train" in data else next(iter(data.values()))
    raise ValueError(f"the data has splits {list(data)}: pick one with data: {{..., split: NAME}}")


def _save_empty(out, ctx: StageContext) -> None:
    """An empty dataset, loadable: datasets' save_to_disk writes zero shards for it, which load_from_disk rejects,
    unless told to write one."""
    from pipeline.run.artifacts import atomic_dir

    ctx.log.warning("curate kept no rows: see funnel.json for what each step dropped")
    with atomic_dir(ctx.stage_dir / "dataset") as tmp:
        out.save_to_disk(str(tmp), num_shards=1)


def _assemble(data, rows: list[dict], written: list[str]):
    """The input's own rows that survived, in order, with the columns the steps wrote put in (or replaced)."""
    out = data.select([row[_INDEX] for row in rows])
    order = list(data.column_names) + [c for c in written if c not in data.column_names]
    for column in written:
        if column in out.column_names:
            out = out.remove_columns(column)
        out = out.add_column(column, [row.get(column) for row in rows])
    return out.select_columns(order)


def _lineage(ctx: StageContext, cfg: CurateStage) -> dict:
    """{stage: resolved config} of every stage upstream of this one, nearest first (from their config.json)."""
    from pipeline.run.artifacts import read_json

    found: dict = {}
    todo = list(ctx.upstream) or ([cfg.data.stage] if cfg.data.stage else [])
    while todo:
        stage = todo.pop(0)
        if stage in found:
            continue
        info = read_json(ctx.run_dir / stage / "config.json", {}) or {}
        found[stage] = info.get("config", {})
        todo += list(info.get("upstream", {}))
    return found


def _provenance(cfg: CurateStage, ctx: StageContext, lineage: dict) -> dict:
    from pipeline.run.recipe import config_to_plain

    provenance = {"recipe": ctx.recipe_name, "recipe_path": ctx.recipe_path, "stage": ctx.name, "kind": ctx.kind,
                  "fingerprint": ctx.fingerprint, "seed": ctx.seed, "source": cfg.data.describe(),
                  "steps": config_to_plain(cfg.steps)}
    if lineage:
        provenance["upstream"] = lineage  # the generating stage's teacher, sampling parameters and prompts
    return {k: v for k, v in provenance.items() if v not in (None, "")}


def _costs(ctx: StageContext, lineage: dict) -> dict | None:
    """The ledger's cost of the stages that made these rows (this stage's own attempt is still open)."""
    from pipeline.run.ledger import stage_costs

    costs = stage_costs(ctx.run_dir)
    return {stage: costs[stage] for stage in lineage if stage in costs} or None


def _metrics(funnel: dict) -> dict:
    metrics = {"rows_in": funnel["rows_in"], "rows_out": funnel["rows_out"],
               "kept_fraction": round(funnel["rows_out"] / funnel["rows_in"], 4) if funnel["rows_in"] else None,
               "dropped": {}}
    for step in funnel["steps"]:
        metrics["dropped"][step["step"]] = metrics["dropped"].get(step["step"], 0) + sum(step["dropped"].values())
        if step["step"] == "decontaminate":
            metrics["contaminated"] = step.get("flagged", {})
        if step["step"] == "verify":
            metrics["verify_mean_score"] = step.get("mean_score")
    return metrics
