"""results.md and the PNG plots of an evaluation, from its metrics (and its records, for length plots).

``results`` is {model: {benchmark: metrics}} as `pipeline.evaluation.metrics.summarize` returns them; ``budget``
is {model: {benchmark: {budget: metrics}}}. Accuracies are fractions in the JSON and percentages in the table.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.run.artifacts import atomic_write_text


def _pct(value, stderr=None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}" + (f" ± {100 * stderr:.1f}" if stderr is not None else "")


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def markdown(results: dict, budget: dict, settings: dict) -> str:
    """The comparison table (models x benchmarks, pass@1 ± stderr), then the details per pair, by level, by budget."""
    benches = list(dict.fromkeys(b for per_model in results.values() for b in per_model))
    lines = ["# Evaluation results", "",
             (f"{settings['description']} pass@1 is the mean over the n samples of each problem, in %, ± its "
              "standard error over problems."), "",
             "| model | " + " | ".join(benches) + " |", "|---|" + "---|" * len(benches)]
    for model, per_model in results.items():
        cells = [_pct(per_model[b]["pass@1"], per_model[b]["pass@1_stderr"]) if b in per_model else "" for b in benches]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "## Details", ""] + _details(results)
    levels = _levels(results)
    if levels:
        lines += ["", "## pass@1 by level", ""] + levels
    if budget:
        lines += ["", "## pass@1 against thinking budget (tokens)", ""] + _budget_table(budget)
    return "\n".join(lines) + "\n"


def _details(results: dict) -> list[str]:
    ks = sorted({key for pm in results.values() for m in pm.values() for key in m
                 if key.startswith(("pass@", "maj@")) and not key.endswith("stderr") and key != "pass@1"},
                key=lambda s: (s.split("@")[0] != "pass", int(s.split("@")[1])))
    head = ["model", "benchmark", "problems", "n", "pass@1", *ks, "format %", "truncated %", "resp. tokens mean",
            "resp. tokens median", "thinking tokens mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, per_model in results.items():
        for bench, m in per_model.items():
            cells = [model, bench, str(m["problems"]), str(m["samples_per_problem"]),
                     _pct(m["pass@1"], m["pass@1_stderr"]), *[_pct(m.get(k)) for k in ks], _pct(m["format_rate"]),
                     _pct(m["truncation_rate"]), _num(m["response_tokens_mean"]), _num(m["response_tokens_median"]),
                     _num(m["thinking_tokens_mean"])]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _levels(results: dict) -> list[str]:
    rows = [(model, bench, m["accuracy_by_level"]) for model, pm in results.items() for bench, m in pm.items()
            if m.get("accuracy_by_level")]
    if not rows:
        return []
    levels = list(dict.fromkeys(level for _, _, by in rows for level in by))
    lines = ["| model | benchmark | " + " | ".join(f"level {lv}" for lv in levels) + " |",
             "|---|---|" + "---|" * len(levels)]
    for model, bench, by in rows:
        lines.append(f"| {model} | {bench} | " + " | ".join(_pct(by[lv]["pass@1"]) if lv in by else "" for lv in levels)
                     + " |")
    return lines


def _budget_table(budget: dict) -> list[str]:
    budgets = sorted({int(b) for pm in budget.values() for per in pm.values() for b in per})
    lines = ["| model | benchmark | " + " | ".join(str(b) for b in budgets) + " |", "|---|---|" + "---|" * len(budgets)]
    for model, pm in budget.items():
        for bench, per in pm.items():
            lines.append(f"| {model} | {bench} | " + " | ".join(
                _pct(per[str(b)]["pass@1"]) if str(b) in per else "" for b in budgets) + " |")
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    _pyplot().close(fig)
    tmp.replace(path)
    return path


def plot_accuracy(results: dict, path: Path) -> Path:
    """Grouped bars: pass@1 per benchmark (groups) and model (bars), error bars = standard error."""
    plt = _pyplot()
    benches = list(dict.fromkeys(b for pm in results.values() for b in pm))
    models = list(results)
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(benches) * max(1, len(models)) ** 0.5), 3.6))
    for i, model in enumerate(models):
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(benches))]
        ms = [results[model].get(b, {}) for b in benches]
        ys = [100 * (m.get("pass@1") or 0) for m in ms]
        errs = [100 * (m.get("pass@1_stderr") or 0) for m in ms]
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=model)
    ax.set_xticks(range(len(benches)), benches)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def length_bins(records: list[dict], bins: int = 8) -> list[tuple[float, float, int]]:
    """(mean response tokens, accuracy, samples) per bin of equal counts, over the judged records, shortest first."""
    judged = sorted((r["completion_tokens"], bool(r["correct"])) for r in records
                    if r.get("correct") is not None and r.get("completion_tokens") is not None)
    if not judged:
        return []
    size = max(1, -(-len(judged) // bins))
    out = []
    for start in range(0, len(judged), size):
        chunk = judged[start:start + size]
        out.append((sum(t for t, _ in chunk) / len(chunk), sum(c for _, c in chunk) / len(chunk), len(chunk)))
    return out


def plot_accuracy_vs_length(records_by_model: dict[str, list[dict]], path: Path) -> Path:
    """Accuracy against response length (equal-count bins of all samples of a model), one line per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for model, records in records_by_model.items():
        points = length_bins(records)
        ax.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", label=model)
    ax.set_xlabel("response length (tokens)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_budget_curve(budget: dict, path: Path) -> Path:
    """pass@1 against thinking budget, one panel per benchmark and one line per model (log-2 budget axis)."""
    plt = _pyplot()
    benches = list(dict.fromkeys(b for pm in budget.values() for b in pm))
    fig, axes = plt.subplots(1, len(benches), figsize=(4.5 * len(benches), 3.6), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        for model, pm in budget.items():
            per = pm.get(bench, {})
            xs = sorted(int(b) for b in per)
            ys = [100 * (per[str(b)]["pass@1"] or 0) for b in xs]
            errs = [100 * (per[str(b)]["pass@1_stderr"] or 0) for b in xs]
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=model)
        ax.set_xscale("log", base=2)
        ticks = sorted({int(b) for pm in budget.values() for b in pm.get(bench, {})})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_ylim(-2, 102)
        ax.set_title(bench, fontsize=10)
        ax.set_xlabel("thinking budget (tokens)")
        ax.set_ylabel("pass@1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def write_report(stage_dir: Path, results: dict, budget: dict, records_by_model: dict, settings: dict) -> list[str]:
    """results.md and the plots; returns the files written (relative to stage_dir)."""
    atomic_write_text(stage_dir / "results.md", markdown(results, budget, settings))
    written = ["results.md", plot_accuracy(results, stage_dir / "accuracy.png").name,
               plot_accuracy_vs_length(records_by_model, stage_dir / "accuracy_vs_length.png").name]
    if budget:
        written.append(plot_budget_curve(budget, stage_dir / "budget_curve.png").name)
    return written
