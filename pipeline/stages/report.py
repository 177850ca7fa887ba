"""The `report` stage: a run's headline table and claims, computed from an evaluate stage and the ledger.

    summary:
      kind: report
      evaluation: {from: evaluate}
      benchmark: arith                      # default: the first benchmark evaluated
      checks:                               # each: model >= times * other + plus   (metric default pass@1)
        - {claim: "RL lifts the teacher", model: rl_teacher, at_least: cold_teacher, plus: 0.10}
        - {claim: "distillation keeps 90%", model: distilled, at_least: rl_teacher, times: 0.9}

It writes summary.json and summary.md (the comparison table, each claim with its numbers and MET / NOT MET, and
the ledger's headline-versus-total cost) and `reasonforge run` prints summary.md at the end of every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.run.context import StageContext, StageResult
from pipeline.run.registry import register_stage

CHECK_KEYS = {"claim", "model", "at_least", "plus", "times", "metric"}
TABLE_METRICS = ("pass@1", "maj@1", "format_rate", "truncation_rate", "response_tokens_mean")


@dataclass
class ReportStage:
    evaluation: dict  # {from: EVALUATE_STAGE}
    benchmark: str | None = None
    checks: list[dict] = field(default_factory=list)
    fail_on_miss: bool = False  # fail the stage (and the run) when a claim does not hold

    def __post_init__(self):
        if set(self.evaluation) != {"from"}:
            raise ValueError("evaluation: write {from: STAGE}, naming an evaluate stage")
        for i, check in enumerate(self.checks):
            unknown = set(check) - CHECK_KEYS
            if unknown:
                raise ValueError(f"checks[{i}]: unknown key '{min(unknown)}'; valid: {', '.join(sorted(CHECK_KEYS))}")
            if not {"model", "at_least"} <= set(check):
                raise ValueError(f"checks[{i}]: needs model: and at_least: (model names of the evaluate stage)")


@register_stage("report", ReportStage, help="headline table and claims from an evaluate stage, plus the cost")
def run(cfg: ReportStage, ctx: StageContext) -> StageResult:
    from pipeline.run.ledger import format_cost_table, headline_and_total

    results = ctx.upstream_result(cfg.evaluation["from"]).metrics
    benchmark = cfg.benchmark or next(iter(next(iter(results.values()))))
    checks = [evaluate_check(c, results, benchmark) for c in cfg.checks]
    summary = {"benchmark": benchmark, "models": {m: r[benchmark] for m, r in results.items()}, "checks": checks,
               "cost": headline_and_total(ctx.run_dir)}
    ctx.write_json("summary.json", summary)
    markdown = render(summary, format_cost_table(ctx.run_dir))
    from pipeline.run.artifacts import atomic_write_text

    atomic_write_text(ctx.stage_dir / "summary.md", markdown)
    missed = [c["claim"] for c in checks if not c["met"]]
    if missed and cfg.fail_on_miss:
        raise RuntimeError(f"claims not met: {'; '.join(missed)} (see {ctx.stage_dir / 'summary.md'})")
    return StageResult(report="summary.md", metrics={"checks_met": len(checks) - len(missed),
                                                     "checks": len(checks)})


def evaluate_check(check: dict, results: dict, benchmark: str) -> dict:
    metric = check.get("metric", "pass@1")
    for name in (check["model"], check["at_least"]):
        if name not in results:
            raise ValueError(f"report: no model '{name}' in the evaluation; models: {', '.join(results)}")
    value = results[check["model"]][benchmark][metric]
    other = results[check["at_least"]][benchmark][metric]
    times, plus = check.get("times", 1.0), check.get("plus", 0.0)
    bound = times * other + plus
    words = f"{check['model']} {metric} {value:.3f} >= " + (f"{times:g} x " if times != 1.0 else "") + \
        f"{check['at_least']} {other:.3f}" + (f" + {plus:g}" if plus else "") + f" = {bound:.3f}"
    return {"claim": check.get("claim", words), "met": value >= bound, "value": value, "bound": bound,
            "detail": words}


def render(summary: dict, cost_table: str) -> str:
    lines = [f"# Results on {summary['benchmark']}", "", "| model | " + " | ".join(TABLE_METRICS) + " |",
             "|---" * (len(TABLE_METRICS) + 1) + "|"]
    for model, r in summary["models"].items():
        cells = [_cell(r.get(m), m) for m in TABLE_METRICS]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if summary["checks"]:
        lines += ["", "## Claims", ""]
        for c in summary["checks"]:
            lines.append(f"- {'MET' if c['met'] else 'NOT MET'}: {c['claim']} ({c['detail']})")
    lines += ["", "## Compute", "", "```", cost_table, "```", ""]
    return "\n".join(lines)


def _cell(value, metric: str) -> str:
    if value is None:
        return "-"
    if metric.endswith("_mean"):
        return f"{value:.1f}"
    return f"{100 * value:.1f}%"
