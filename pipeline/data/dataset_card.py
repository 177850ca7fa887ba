"""Dataset cards: a Hugging Face style README.md inside a `datasets` save_to_disk folder.

The card is YAML front matter (license, task_categories, language, size_categories, pretty_name, configs pointing
at the folder's arrow shards) and a Markdown body: provenance, the curation funnel, token-length statistics with a
histogram (length_histogram.png beside the card), decontamination per benchmark, and compute cost. What cannot be
re-derived from the rows (funnel, provenance, cost, overrides) is also kept in a sidecar card.json, so that
`refresh_card` (behind `reasonforge card PATH`) rebuilds a full card from the folder alone.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.run.artifacts import atomic_write_json, atomic_write_text, read_json

README = "README.md"
SIDECAR = "card.json"
HISTOGRAM = "length_histogram.png"
DEFAULT_FRONT = {"license": "other", "task_categories": ["text-generation"], "language": ["en"],
                 "tags": ["reasoning", "chain-of-thought", "reasonforge"]}
SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                (10**10, "1B<n<10B"), (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))
LENGTH_PARTS = ("thinking", "answer", "response")
EXTRA_COLUMNS = {  # columns the curate steps add to the canonical schema
    "pass_rate": "share of the problem's judged samples that passed verify, counted before failures were dropped",
    "contaminated": "benchmarks the problem shares a word n-gram with (decontaminate with drop: false)",
}


def size_category(n: int) -> str:
    """The Hub's size_categories bucket of a row count."""
    return next((label for limit, label in SIZE_BUCKETS if n < limit), "n>1T")


def _splits(folder: Path) -> dict:
    """{split: Dataset} of a save_to_disk folder; a plain Dataset is the split "train"."""
    import datasets

    loaded = datasets.load_from_disk(str(folder))
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def _lengths(splits: dict, tokenizer: str | None) -> dict[str, list[int]]:
    """Token counts per part (thinking, answer, response) over every split; rows without the part are skipped."""
    from pipeline.data.schema import split_response

    tok = None
    if tokenizer:
        from rewards.tokenizer import shared_tokenizer

        tok = shared_tokenizer(tokenizer)
    out: dict[str, list[int]] = {part: [] for part in LENGTH_PARTS}
    for ds in splits.values():
        columns = [c for c in LENGTH_PARTS if c in ds.column_names]
        if not columns:
            continue
        for batch in ds.select_columns(columns).iter(batch_size=1000):
            size = len(batch[columns[0]])
            responses = batch.get("response", [None] * size)
            parts = {"response": responses}
            if "thinking" in batch and "answer" in batch:
                parts.update(thinking=batch["thinking"], answer=batch["answer"])
            else:  # a folder without the split columns: split the responses the R1 way
                pairs = [split_response(r) if r is not None else (None, None) for r in responses]
                parts.update(thinking=[p[0] for p in pairs], answer=[p[1] for p in pairs])
            for part, texts in parts.items():
                present = [t for t in texts if t is not None]
                if tok is not None:
                    out[part] += [len(ids) for ids in tok(present, add_special_tokens=False)["input_ids"]]
                else:
                    out[part] += [len(t.split()) for t in present]
    return {part: values for part, values in out.items() if values}


def length_stats(lengths: dict[str, list[int]]) -> dict[str, dict]:
    import numpy as np

    stats = {}
    for part, values in lengths.items():
        a = np.asarray(values)
        stats[part] = {"rows": int(a.size), "min": int(a.min()), "mean": round(float(a.mean()), 1),
                       "median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "max": int(a.max())}
    return stats


def _histogram(lengths: dict[str, list[int]], path: Path, unit: str) -> Path:
    """Thinking and answer length histograms, one panel each; Agg canvas, so no display and no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    parts = [p for p in ("thinking", "answer") if p in lengths] or list(lengths)
    fig = Figure(figsize=(5 * len(parts), 3.5), tight_layout=True)
    FigureCanvasAgg(fig)
    for i, part in enumerate(parts):
        ax = fig.add_subplot(1, len(parts), i + 1)
        ax.hist(lengths[part], bins=50, color="tab:blue" if part == "thinking" else "tab:orange")
        ax.set_title(f"{part} length")
        ax.set_xlabel(f"tokens ({unit})")
        ax.set_ylabel("rows")
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)  # atomic, like every other write
    return path


def front_matter(folder: Path, splits: dict, overrides: dict | None, provenance: dict | None) -> dict:
    rows = sum(len(ds) for ds in splits.values())
    single = list(splits) == ["train"] and not (folder / "dataset_dict.json").exists()
    data_files = [{"split": name, "path": "data-*.arrow" if single else f"{name}/data-*.arrow"} for name in splits]
    prov = provenance or {}
    default_name = "/".join(str(prov[k]) for k in ("recipe", "stage") if prov.get(k)) or folder.name
    front = {**DEFAULT_FRONT, "size_categories": [size_category(rows)], "pretty_name": default_name}
    for key, value in (overrides or {}).items():
        front[key] = [value] if key in ("language", "task_categories", "tags") and isinstance(value, str) else value
    front["configs"] = [{"config_name": "default", "data_files": data_files}]
    return front


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _provenance_section(provenance: dict) -> list[str]:
    flat = {k: v for k, v in provenance.items() if not isinstance(v, (dict, list))}
    nested = {k: v for k, v in provenance.items() if isinstance(v, (dict, list))}
    lines = ["## Provenance", ""] + _table(["field", "value"], [[k, f"`{v}`"] for k, v in flat.items()])
    for key, value in nested.items():
        lines += ["", f"**{key}**", "", "```yaml", yaml.safe_dump(value, sort_keys=False).rstrip(), "```"]
    return lines + [""]


def _funnel_section(funnel: dict) -> list[str]:
    rows = []
    for step in funnel.get("steps", []):
        dropped = step.get("dropped") or {}
        reasons = ", ".join(f"{reason}: {n:,}" for reason, n in dropped.items()) or "-"
        rows.append([step["step"], f"{step['rows_in']:,}", f"{sum(dropped.values()):,}", reasons,
                     f"{step['rows_out']:,}"])
    rows_in, rows_out = funnel.get("rows_in", 0), funnel.get("rows_out", 0)
    kept = f" ({100 * rows_out / rows_in:.1f}% kept)" if rows_in else ""
    return (["## Curation funnel", "", f"{rows_in:,} rows in, {rows_out:,} rows out{kept}.", ""]
            + _table(["step", "rows in", "dropped", "by reason", "rows out"], rows) + [""])


def _lengths_section(stats: dict, unit: str, histogram: Path | None) -> list[str]:
    rows = [[part, f"{s['rows']:,}", s["min"], s["mean"], s["median"], s["p90"], s["max"]]
            for part, s in stats.items()]
    lines = ["## Token lengths", "", f"Counted with {unit}.", ""]
    lines += _table(["part", "rows", "min", "mean", "median", "p90", "max"], rows)
    return lines + ([""] + [f"![token length histogram]({histogram.name})"] if histogram else []) + [""]


def decontamination_from_funnel(funnel: dict | None) -> dict | None:
    steps = [s for s in (funnel or {}).get("steps", []) if s.get("step") == "decontaminate"]
    if not steps:
        return None
    last = steps[-1]
    return {"ngram": last.get("ngram"), "flagged": last.get("flagged", {}),
            "dropped": sum(s.get("dropped", {}).get("contaminated", 0) for s in steps)}


def _decontamination_section(decon: dict) -> list[str]:
    flagged = decon.get("flagged", decon if all(isinstance(v, int) for v in decon.values()) else {})
    lines = ["## Decontamination", ""]
    if decon.get("ngram"):
        lines += [(f"Rows flagged for a word {decon['ngram']}-gram shared with a benchmark problem (both lowercased, "
                   "punctuation removed), per benchmark:"), ""]
    lines += _table(["benchmark", "rows flagged"], [[name, f"{n:,}"] for name, n in flagged.items()])
    if "dropped" in decon:
        lines += ["", f"Rows dropped as contaminated: {decon['dropped']:,}."]
    return lines + [""]


def _number(value) -> str:
    value = float(value or 0)
    return f"{int(value):,}" if value.is_integer() else f"{value:,.4g}"


def _cost_section(cost: dict) -> list[str]:
    per_stage = cost if all(isinstance(v, dict) for v in cost.values()) else {"(total)": cost}
    keys = ("wall_s", "device_hours", "cost_usd", "tokens_generated")
    rows = [[stage, c.get("kind", "")] + [_number(c.get(k)) for k in keys] for stage, c in per_stage.items()]
    if len(per_stage) > 1:
        rows.append(["**total**", ""] + [_number(sum(float(c.get(k) or 0) for c in per_stage.values())) for k in keys])
    return (["## Compute cost", "", "From the run's ledger: the stages that produced these rows.", ""]
            + _table(["stage", "kind", "wall s", "device-hours", "USD", "tokens generated"], rows) + [""])


def _schema_section(splits: dict) -> list[str]:
    from pipeline.data.schema import TRACE_COLUMNS

    meanings = {**TRACE_COLUMNS, **EXTRA_COLUMNS}
    first = next(iter(splits.values()))
    # Escaped: a bare <think> is an HTML tag to a Markdown renderer (the Hub hides it), a bare | ends a cell.
    rows = [[f"`{c}`", meanings.get(c, "").replace("<", "&lt;").replace("|", "\\|")] for c in first.column_names]
    lines = ["## Columns", ""] + _table(["column", "meaning"], rows)
    return lines + ["", "Splits: " + ", ".join(f"{name} ({len(ds):,} rows)" for name, ds in splits.items()), ""]


def write_card(dataset_dir, *, funnel: dict | None = None, provenance: dict | None = None,
               decontamination: dict | None = None, cost: dict | None = None, overrides: dict | None = None,
               tokenizer: str | None = None) -> Path:
    """Write README.md (and length_histogram.png, card.json) into a save_to_disk folder; returns the README path.

    `decontamination` defaults to what the funnel's decontaminate step recorded; `cost` is a ledger summary
    ({stage: {wall_s, device_hours, cost_usd, tokens_generated, ...}} or one such dict); `overrides` set front
    matter keys (license, language, pretty_name, tags, ...); lengths count whitespace tokens unless `tokenizer`.
    """
    folder = Path(dataset_dir)
    splits = _splits(folder)
    decontamination = decontamination or decontamination_from_funnel(funnel)
    unit = f"the tokenizer {tokenizer}" if tokenizer else "whitespace tokens"
    lengths = _lengths(splits, tokenizer)
    histogram = None
    if lengths:
        histogram = _histogram(lengths, folder / HISTOGRAM, "tokenizer" if tokenizer else "whitespace")
    front = front_matter(folder, splits, overrides, provenance)
    body = [f"# {front['pretty_name']}", "",
            ("Reasoning traces in ReasonForge's canonical schema (one row = one problem with one chain-of-thought "
             "response: `<think>` thinking `</think>` answer), saved with `datasets.save_to_disk`."), ""]
    if provenance:
        body += _provenance_section(provenance)
    if funnel:
        body += _funnel_section(funnel)
    if lengths:
        body += _lengths_section(length_stats(lengths), unit, histogram)
    if decontamination:
        body += _decontamination_section(decontamination)
    if cost:
        body += _cost_section(cost)
    body += _schema_section(splits)
    atomic_write_json(folder / SIDECAR, {"funnel": funnel, "provenance": provenance,
                                         "decontamination": decontamination, "cost": cost,
                                         "overrides": overrides or {}, "tokenizer": tokenizer})
    text = "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body)
    return atomic_write_text(folder / README, text.rstrip() + "\n")


def refresh_card(path, tokenizer: str | None = None) -> Path:
    """Rebuild the card of a dataset folder (or of the folder of the README.md given) from the folder alone.

    Statistics and histogram come from the rows (counted with `tokenizer` when given, else as last time); funnel,
    provenance, cost and overrides from card.json when it is there, else the front matter of an existing README.md
    is kept (everything but the derived keys).
    """
    folder = Path(path)
    folder = folder.parent if folder.is_file() or folder.suffix == ".md" else folder
    saved = read_json(folder / SIDECAR)
    if saved is None:
        saved = {}
        if (folder / README).exists():
            front, _ = parse_card(folder / README)
            saved["overrides"] = {k: v for k, v in front.items() if k not in ("size_categories", "configs")}
    if tokenizer:
        saved["tokenizer"] = tokenizer
    allowed = ("funnel", "provenance", "decontamination", "cost", "overrides", "tokenizer")
    return write_card(folder, **{k: v for k, v in saved.items() if k in allowed})


def parse_card(path) -> tuple[dict, str]:
    """(front matter, body) of a card; the path is the README.md or its folder."""
    path = Path(path)
    text = (path / README if path.is_dir() else path).read_text()
    if not text.startswith("---\n"):
        return {}, text
    head, sep, body = text[4:].partition("\n---\n")
    if not sep:
        raise ValueError(f"{path}: front matter opened with --- but never closed")
    return yaml.safe_load(head) or {}, body.lstrip("\n")


def add_cli(subparsers) -> None:
    """`reasonforge card PATH`."""
    p = subparsers.add_parser("card", help="write or refresh the dataset card (README.md) of a datasets folder")
    p.add_argument("path", help="a save_to_disk folder (e.g. runs/NAME/curate/dataset) or its README.md")
    p.add_argument("--tokenizer", help="count token lengths with this tokenizer (path or hub id), not whitespace")
    p.set_defaults(handler=cmd_card)


def cmd_card(args) -> int:
    from pipeline.cli import UserFacingError

    folder = Path(args.path)
    folder = folder.parent if folder.suffix == ".md" else folder
    if not ((folder / "dataset_info.json").exists() or (folder / "dataset_dict.json").exists()):
        raise UserFacingError(f"{args.path}: not a `datasets` save_to_disk folder (no dataset_info.json or "
                              "dataset_dict.json); give a stage's dataset/ folder")
    print(refresh_card(folder, tokenizer=args.tokenizer))
    return 0
