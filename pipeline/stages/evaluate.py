"""The `evaluate` stage and `reasonforge eval`: every model on every benchmark, n samples per problem, graded by
the RL rewards, reported as pass@1 ± stderr, pass@k, maj@k, format and truncation rates, lengths, accuracy by level,
and accuracy against a thinking budget.

Per (model, benchmark[, budget]) the samples go to ``samples/<model>__<benchmark>[__budget<B>].jsonl``, written
atomically when the pair is done; a rerun after an interruption reuses every finished pair (the runner wipes the
stage dir when the config or an upstream model changes, so a file found here was made under this config).
``results.json``, ``results.md`` and the plots (accuracy.png, accuracy_vs_length.png, budget_curve.png) are
rewritten from all pairs at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.data.templates import template_fields
from pipeline.evaluation.metrics import check_ks
from pipeline.evaluation.sampling import DEFAULT_PROMPT
from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef, ModelRef
from pipeline.run.registry import register_stage

_FILE_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")


@dataclass
class EvalBenchmark:
    name: str | None = None  # label in tables and file names; default: the benchmark name or file stem
    benchmark: str | None = None  # gsm8k | math500 | aime24 | amc23 | a file with problem and answer columns
    data: DataRef | None = None  # or any DataRef, e.g. {from: problems, split: test}
    n: int = 4  # samples per problem (R1 used 64 for AIME)
    k: list[int] = field(default_factory=lambda: [1])  # pass@k and maj@k to report (each needs n >= k)
    limit: int | None = None  # first L problems only
    prompt_template: str = DEFAULT_PROMPT  # "{problem}" for tiny models trained on bare problems
    problem_column: str | None = None  # when the data calls its problem column otherwise
    answer_column: str | None = None  # when the data calls its gold answer column otherwise

    def __post_init__(self):
        if (self.benchmark is None) == (self.data is None):
            raise ValueError("give exactly one of benchmark: NAME_OR_FILE or data: {from: STAGE, split: test}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n: samples per problem must be a positive integer, got {self.n!r}")
        check_ks(self.k, self.n)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit: must be a positive number of problems, got {self.limit}")
        fields = template_fields(self.prompt_template)
        if "problem" not in fields:
            raise ValueError("prompt_template: must contain {problem}, where the problem text goes")
        if extra := [f for f in fields if f != "problem"]:
            raise ValueError(f"prompt_template: {{{extra[0]}}} is not a field here (only {{problem}} is); write a "
                             "literal brace as {{ or }}")
        if self.benchmark:
            _check_benchmark_name(self.benchmark)
        self.name = self.name or (Path(self.benchmark).stem if self.benchmark else _data_label(self.data))


def _check_benchmark_name(value: str) -> None:
    looks_like_file = value.endswith(_FILE_SUFFIXES) or value.startswith((".", "/", "~"))
    if looks_like_file:
        if not Path(value).expanduser().exists():
            raise ValueError(f"benchmark: no such file '{value}'; give an existing file or a named benchmark")
        return
    if "/" in value or Path(value).exists():
        return  # a folder or a hub id: load_benchmark reads it
    from pipeline.data.benchmarks import BENCHMARKS

    if value not in BENCHMARKS:
        raise ValueError(f"benchmark: unknown benchmark '{value}'; use one of {', '.join(BENCHMARKS)} or a path "
                         "to a file with problem and answer columns")


def _data_label(ref: DataRef) -> str:
    base = ref.stage or ref.released or Path(ref.path or "data").stem
    return f"{base}-{ref.split}" if ref.split else base


@dataclass
class EvaluateStage:
    models: list[ModelRef]  # [{from: teacher}, {from: student}, "path", ...]
    benchmarks: list[EvalBenchmark]
    model_names: list[str] | None = None  # labels for the table, one per model
    temperature: float = 0.6  # R1's protocol: 0.6 / 0.95
    top_p: float = 0.95
    max_new_tokens: int = 32768  # tiny recipes set this small
    stop: list[str] = field(default_factory=list)  # extra stop strings
    backend: str = "transformers"  # transformers | vllm | openai | procedural (pipeline.generation)
    backend_options: dict = field(default_factory=dict)  # handed to make_backend (batch_size, ...)
    rewards: list[dict | str] = field(default_factory=lambda: [{"name": "accuracy"}, {"name": "think_format"}])
    correct_reward: str = "accuracy"  # the reward whose full score means correct
    format_reward: str | None = "think_format"  # the reward whose full score means well formatted
    budgets: list[int] = field(default_factory=list)  # thinking budgets in tokens (s1-style test-time scaling)
    budget_mode: Literal["cap", "extend"] = "cap"  # cap: force </think> at B; extend: also replace early closes
    wait_extensions: int = 0  # extend: how many early </think> become "Wait"
    answer_max_new_tokens: int | None = None  # the answer call after a budgeted thinking (default max_new_tokens)
    prefill: str | None = None  # text put after the generation prompt, e.g. "<think>\n"
    system_prompt: str | None = None

    def __post_init__(self):
        if not self.models:
            raise ValueError("models: give at least one model ({from: STAGE}, a path or a hub id)")
        if not self.benchmarks:
            raise ValueError("benchmarks: give at least one, e.g. [{benchmark: gsm8k, n: 4}]")
        if self.model_names is not None and len(self.model_names) != len(self.models):
            raise ValueError(f"model_names: {len(self.model_names)} names for {len(self.models)} models; give one "
                             "per model or leave it out")
        labels = model_labels(self)
        if len(set(labels)) != len(labels):
            raise ValueError(f"model_names: labels must be distinct, got {labels}")
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmarks: names must be distinct, got {names}; set name: on each")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError("temperature must be >= 0, top_p in (0, 1] and max_new_tokens >= 1 "
                             f"(got {self.temperature}, {self.top_p}, {self.max_new_tokens})")
        if self.answer_max_new_tokens is not None and self.answer_max_new_tokens < 1:
            raise ValueError(f"answer_max_new_tokens: must be >= 1, got {self.answer_max_new_tokens}")
        self._check_rewards()
        self._check_budgets()

    def _check_rewards(self) -> None:
        from rewards import REGISTRY

        names = []
        for i, spec in enumerate(self.rewards):
            name = spec if isinstance(spec, str) else spec.get("name")
            if not isinstance(name, str) or not (name in REGISTRY or "." in name):
                raise ValueError(f"rewards[{i}]: unknown reward {name!r}; use one of {', '.join(sorted(REGISTRY))}")
            names.append(name)
        for key in ("correct_reward", "format_reward"):
            value = getattr(self, key)
            if value is not None and value not in names:
                raise ValueError(f"{key}: '{value}' is not among rewards ({', '.join(names)}); add "
                                 f"{{name: {value}}} to rewards or name one of them")

    def _check_budgets(self) -> None:
        for b in self.budgets:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise ValueError(f"budgets: each budget is a positive number of thinking tokens, got {b!r}")
        self.budgets = sorted(set(self.budgets))
        if self.wait_extensions < 0:
            raise ValueError(f"wait_extensions: must be >= 0, got {self.wait_extensions}")
        if self.budget_mode == "extend" and (self.wait_extensions < 1 or not self.budgets):
            raise ValueError("budget_mode: extend needs budgets: [...] and wait_extensions >= 1 (how many early "
                             "</think> become 'Wait')")
        if self.budget_mode == "cap" and self.wait_extensions:
            raise ValueError("wait_extensions: only applies with budget_mode: extend; set it or drop wait_extensions")


def model_labels(cfg: EvaluateStage) -> list[str]:
    """The table label of each model: model_names, else the stage it came from, else its folder or hub name."""
    if cfg.model_names:
        return list(cfg.model_names)
    labels = []
    for ref in cfg.models:
        if ref.stage:
            label = ref.stage
        elif ref.path:
            parts = Path(ref.path.rstrip("/")).parts
            label = "-".join(parts[-2:]) if len(parts) > 1 and parts[-1] in ("model", "final") else parts[-1]
        else:
            label = "tiny-init"
        label = label if label not in labels else f"{label}-{len(labels) + 1}"
        labels.append(label)
    return labels


def pair_file(model: str, benchmark: str, budget: int | None) -> str:
    safe = [_FILE_SAFE_RE.sub("-", model), _FILE_SAFE_RE.sub("-", benchmark)]
    return "__".join(safe) + (f"__budget{budget}" if budget is not None else "") + ".jsonl"


class _Usage:
    """Feeds the ledger; with several models the params it reports are token-weighted so FLOPs come out right."""

    def __init__(self, ledger):
        self.ledger, self.weighted, self.tokens = ledger, 0.0, 0

    def add(self, params: int | None, count) -> None:
        tokens = count.prompt + count.generated
        self.weighted += (params or 0) * tokens
        self.tokens += tokens
        average = round(self.weighted / self.tokens) if self.tokens else params
        self.ledger.add(params=average, tokens_generated=count.generated, tokens_prompt=count.prompt)


def _open_backend(cfg: EvaluateStage, ctx: StageContext, ref: ModelRef):
    from pipeline.generation import make_backend

    source = ctx.resolve_model(ref)
    if cfg.backend == "procedural":
        return make_backend("procedural", tokenizer=source if isinstance(source, str) else None,
                            **cfg.backend_options)
    if cfg.backend == "transformers":
        return make_backend("transformers", model=source, trust_remote_code=ref.trust_remote_code,
                            config_overrides=ref.config_overrides, **cfg.backend_options)
    return make_backend(cfg.backend, model=source, **cfg.backend_options)


def _evaluate_model(cfg, ctx, label, ref, benches, grader, usage) -> dict:
    """{(benchmark, budget): records} of one model; finished pairs are read back, the backend opened only if needed."""
    from pipeline.evaluation import sampling
    from pipeline.evaluation.budgets import TokenCount

    out, backend = {}, None
    try:
        for bench, rows in benches:
            for budget in [None, *cfg.budgets]:
                path = ctx.stage_dir / "samples" / pair_file(label, bench.name, budget)
                records = sampling.read_records(path, len(rows) * bench.n)
                if records is not None:
                    ctx.log.info("%s / %s%s: reusing %s", label, bench.name, _budget_note(budget), path.name)
                else:
                    backend = backend or _open_backend(cfg, ctx, ref)
                    count = TokenCount()
                    meta = {"model": label, "benchmark": bench.name, "budget": budget}
                    records = sampling.run_pair(backend, rows, cfg, bench, grader, ctx.seed, budget, meta, count)
                    sampling.write_records(path, records)
                    usage.add(getattr(backend, "parameters", None), count)
                    ctx.log.info("%s / %s%s: %d samples, %d tokens generated", label, bench.name,
                                 _budget_note(budget), len(records), count.generated)
                out[(bench.name, budget)] = records
    finally:
        if backend is not None:
            backend.close()
    return out


def _budget_note(budget: int | None) -> str:
    return f" (thinking budget {budget})" if budget is not None else ""


@register_stage("evaluate", EvaluateStage, help="models x benchmarks: pass@1 ± stderr, pass@k, maj@k, budgets")
def run(cfg: EvaluateStage, ctx: StageContext) -> StageResult:
    """Evaluate every model on every benchmark (and thinking budget); write samples, results and plots."""
    from pipeline.evaluation import metrics, report, sampling, sources
    from pipeline.run.artifacts import clean_stale_temporaries

    clean_stale_temporaries(ctx.stage_dir / "samples")  # half-written pair files of a killed attempt
    grader = sampling.Grader.from_specs(cfg.rewards, cfg.correct_reward, cfg.format_reward)
    benches = [(b, sources.load_rows(b, ctx, f"benchmarks[{i}]")) for i, b in enumerate(cfg.benchmarks)]
    usage = _Usage(ctx.ledger)
    results, budget_results, by_model = {}, {}, {}
    for label, ref in zip(model_labels(cfg), cfg.models):
        pairs = _evaluate_model(cfg, ctx, label, ref, benches, grader, usage)
        by_model[label] = [r for (_, budget), records in pairs.items() if budget is None for r in records]
        for bench, _ in benches:
            summary = metrics.summarize(pairs[(bench.name, None)], bench.k)
            curve = {str(b): metrics.summarize(pairs[(bench.name, b)], bench.k) for b in cfg.budgets}
            if curve:
                summary["budget_pass@1"] = {b: m["pass@1"] for b, m in curve.items()}
                budget_results.setdefault(label, {})[bench.name] = curve
            results.setdefault(label, {})[bench.name] = summary
    settings = _settings(cfg)
    ctx.write_json("results.json", {"settings": settings, "models": {label: ref.describe() for label, ref in
                                                                     zip(model_labels(cfg), cfg.models)},
                                    "results": results, "budgets": budget_results})
    report.write_report(ctx.stage_dir, results, budget_results, by_model, settings)
    return StageResult(report="results.md", metrics=results)


def _settings(cfg: EvaluateStage) -> dict:
    ns = sorted({b.n for b in cfg.benchmarks})
    text = (f"{'/'.join(map(str, ns))} samples per problem at temperature {cfg.temperature}, top-p {cfg.top_p}, "
            f"at most {cfg.max_new_tokens} new tokens, {cfg.backend} backend.")
    return {"description": text, "temperature": cfg.temperature, "top_p": cfg.top_p,
            "max_new_tokens": cfg.max_new_tokens, "backend": cfg.backend, "budgets": cfg.budgets,
            "budget_mode": cfg.budget_mode, "wait_extensions": cfg.wait_extensions, "prefill": cfg.prefill,
            "rewards": cfg.rewards, "benchmarks": {b.name: {"n": b.n, "k": b.k, "limit": b.limit}
                                                   for b in cfg.benchmarks}}


# ---------------------------------------------------------------------------------------------------------------
# reasonforge eval: a one-stage recipe built in memory and run by the runner (so it is cached and resumable too).

def add_cli(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate models on benchmarks without a recipe; prints the table")
    p.add_argument("--model", action="append", required=True, help="a model folder or hub id (repeatable)")
    p.add_argument("--benchmark", action="append", required=True,
                   help="gsm8k | math500 | aime24 | amc23 | a jsonl/parquet/csv file with problem and answer columns")
    p.add_argument("--n", type=int, default=4, help="samples per problem (default 4)")
    p.add_argument("--k", type=int, action="append", help="also report pass@k and maj@k (repeatable; k <= n)")
    p.add_argument("--limit", type=int, help="evaluate the first L problems only")
    p.add_argument("--max-new-tokens", type=int, default=32768)
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--prompt-template", default=DEFAULT_PROMPT, help="with {problem}; '{problem}' for tiny models")
    p.add_argument("--backend", default="transformers")
    p.add_argument("--budget", type=int, action="append", help="a thinking budget in tokens (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run folder (default runs/eval/<model>-<time>); the same --out resumes")
    p.set_defaults(handler=cmd_eval)


def eval_recipe_dict(args) -> dict:
    """The one-stage recipe `reasonforge eval` runs, as the YAML it would be."""
    import time

    benchmarks = [{"benchmark": b, "n": args.n, "k": sorted(set(args.k or [1])), "limit": args.limit,
                   "prompt_template": args.prompt_template} for b in args.benchmark]
    stage = {"kind": "evaluate", "models": list(args.model), "benchmarks": benchmarks,
             "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
             "backend": args.backend, "budgets": args.budget or []}
    out = args.out or f"runs/eval/{_FILE_SAFE_RE.sub('-', Path(args.model[0].rstrip('/')).name)}-" \
                      f"{time.strftime('%Y%m%d-%H%M%S')}"
    return {"name": "eval", "seed": args.seed, "run_dir": out, "stages": {"eval": stage}}


def cmd_eval(args) -> int:
    from pipeline.run import runner
    from pipeline.run.recipe import build_recipe

    recipe = build_recipe(eval_recipe_dict(args), "reasonforge eval")
    results = runner.run(recipe)
    table = Path(results["eval"].report)
    print(table.read_text())
    print(f"samples, results.json and plots: {table.parent}")
    return 0
