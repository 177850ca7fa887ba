"""The rehearsal's table: each stage passed or failed with what was checked, and the projected full-scale cost."""

from __future__ import annotations

import json
from dataclasses import asdict

from pipeline.rehearsal import projection

MARK = {True: "ok", False: "FAIL", None: "note"}


def format_table(name: str, reports: list, notes: list[str], models: dict, price: float) -> str:
    lines = [f"# Rehearsal of {name}", "",
             ("| stage | kind | result | checks | rows (full) | tokens trained | tokens generated | FLOPs | "
             "device-hours | USD |"), "|---|---|---|---|---|---|---|---|---|---|"]
    total_hours = total_flops = 0.0
    for r in reports:
        cost = r.cost
        passed = sum(c[1] is True for c in r.checks)
        checks = f"{passed}/{len(r.checks)} ok" if r.checks else "-"
        if cost:
            total_hours += cost.device_hours
            total_flops += cost.flops
        lines.append(f"| {r.stage} | {r.kind} | {r.status} | {checks} | {_n(cost and cost.rows)} | "
                     f"{_n(cost and cost.tokens_trained)} | {_n(cost and cost.tokens_generated)} | "
                     f"{_e(cost and cost.flops)} | {_h(cost and cost.device_hours)} | "
                     f"{_usd(cost and cost.device_hours * price)} |")
    lines.append(f"| total | | | | | | | {_e(total_flops)} | {_h(total_hours)} | {_usd(total_hours * price)} |")
    lines += ["", (f"Projection: FLOPs by the ledger's formulas (pipeline/run/compute.py: 6N + attention per trained "
              f"token, 2N + attention per generated or scored token, N the real model's); device-hours on an H100 (bf16 dense peak {projection.PEAK_FLOPS / 1e12:.0f} "
              f"TFLOP/s) at {projection.MFU_TRAIN:.0%} MFU for training, {projection.MFU_DECODE:.0%} for "
              f"decoding; {price:g} USD per device-hour. Rehearsal proves the pipeline runs, not speed, memory or "
              f"numerics at full size."), ""]
    lines += ["## Models (rebuilt from their own config and tokenizer, shrunk, random weights)", ""]
    for source, info in models.items():
        lines.append(f"- {source}: {info['architecture']}, {info['params_full'] / 1e9:.2f}B parameters "
                     f"({info['layers_full']} layers x {info['hidden_full']}), vocabulary {info['vocab_size']}, "
                     f"{info['max_position_embeddings']} positions")
    lines += ["", "## Checks", ""]
    for r in reports:
        if r.error:
            lines.append(f"- **{r.stage}: {r.error}**")
        for check in r.checks:
            lines.append(f"- {r.stage}: [{MARK[check[1]]}] {check[0]}: {check[2]}")
        for assumption in (r.cost.assumptions if r.cost else []):
            lines.append(f"- {r.stage}: [assumed] {assumption}")
    if notes:
        lines += ["", "## Stand-ins", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def to_json(reports: list, notes: list[str], models: dict) -> str:
    return json.dumps({"stages": [{"stage": r.stage, "kind": r.kind, "status": r.status, "error": r.error,
                                   "checks": [list(c) for c in r.checks],
                                   "cost": asdict(r.cost) if r.cost else None} for r in reports],
                       "notes": notes, "models": models}, indent=1)


def _n(value) -> str:
    if not value:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def _e(value) -> str:
    return f"{value:.2g}" if value else "-"


def _h(value) -> str:
    return projection.format_hours(value) if value else "-"


def _usd(value) -> str:
    return f"{value:,.2f}" if value else "-"
