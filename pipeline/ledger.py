"""Compute and cost accounting: one ledger row per stage attempt, failed and interrupted ones included.

An attempt appends a `started` row when it begins and a final row when it ends. A process killed with -9 never
writes the final row; the runner closes such an attempt on its next start, estimating its wall time from the
newest file the stage wrote. FLOPs and prices are pipeline/compute.py's: 6N + attention per trained token,
2N + attention per forward token (generation, reference, old-policy and teacher passes); a GPU is priced per
GPU-hour, a CPU per core-hour.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline import compute

DEFAULT_PRICE_PER_DEVICE_HOUR = compute.DEFAULT_PRICE_PER_GPU_HOUR  # the GPU price; CPUs: per core-hour
TRAINING_KINDS = ("sft", "grpo", "distill", "reward_model")
COUNTERS = ("tokens_trained", "tokens_generated", "tokens_prompt", "tokens_forward", "tokens_teacher",
            "rows_processed")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def detect_devices() -> tuple[str, int]:
    """(kind, count) of the accelerators this process may use; without one ('cpu', the cores it may run on: what
    a rented machine bills, whether or not torch keeps them all busy)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0), torch.cuda.device_count()
    except ImportError:
        pass
    return "cpu", len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Attempt:
    ledger_path: Path
    stage: str
    kind: str
    attempt: int
    price_per_device_hour: float
    start: float = field(default_factory=time.time)
    device_kind: str = "cpu"
    device_count: int = 1
    processes: int = 1
    params: int = 0
    counters: dict = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    prices: compute.Prices | None = None  # None: price_per_device_hour for any device (rows written before)
    model: compute.ModelShape | None = None  # the model the work ran on (params alone: no attention term)
    teacher: compute.ModelShape | None = None  # logit distillation's teacher (tokens_teacher run through it)
    flops: float = 0.0

    def add(self, params: int | None = None, *, model: compute.ModelShape | None = None,
            teacher: compute.ModelShape | None = None, context: float = 0.0, sequences: int = 0,
            **counters: float) -> None:
        """Stages report work as it happens: ctx.ledger.add(tokens_trained=..., model=compute.shape_of(model),
        context=...), or params=N for a model known only by its size. `context` and `sequences` describe this call's
        tokens for the attention term (compute.work_flops)."""
        if model is not None:
            self.model, self.params = model, model.params
        elif params:
            self.params = int(params)
            if self.model is None or self.model.params != self.params:
                self.model = compute.ModelShape(self.params)
        self.teacher = teacher or self.teacher
        for key, value in counters.items():
            self.counters[key] = self.counters.get(key, 0) + (value or 0)
        work = {k: counters.get(k) or 0 for k in ("tokens_trained", "tokens_generated", "tokens_prompt",
                                                  "tokens_forward", "tokens_teacher")}
        self.flops += compute.work_flops(self.model or compute.ModelShape(self.params), context=context,
                                         sequences=sequences, teacher=self.teacher, **work)

    def row(self, status: str, wall_s: float | None = None) -> dict:
        wall = time.time() - self.start if wall_s is None else wall_s
        # Under accelerate each process drives one device (a GPU, or a CPU worker): count them all.
        devices = max(self.device_count, self.processes) if self.processes > 1 else self.device_count
        device_hours = wall * devices / 3600  # GPU-hours, or CPU core-hours
        unit, price = self.prices.unit(self.device_kind) if self.prices else ("device", self.price_per_device_hour)
        return {
            "stage": self.stage, "kind": self.kind, "attempt": self.attempt, "status": status,
            "start": datetime.fromtimestamp(self.start, timezone.utc).isoformat(timespec="seconds"),
            "wall_s": round(wall, 3), "device_kind": self.device_kind, "device_count": devices,
            "processes": self.processes, "params": self.params, **self.counters, "flops": float(self.flops),
            "device_hours": device_hours, "billed_unit": unit, "price_per_device_hour": price,
            "cost_usd": device_hours * price,
        }

    def begin(self) -> Attempt:
        _append(self.ledger_path, self.row("started", 0.0))
        return self

    def finish(self, status: str) -> dict:
        row = self.row(status)
        _append(self.ledger_path, row)
        return row


def _append(path: Path, row: dict) -> None:
    # One short line per write with O_APPEND: a crash loses at most that line, never earlier rows.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_attempts(run_dir: str | Path) -> list[dict]:
    """One dict per attempt (the last row written for it wins), in the order attempts started."""
    path = Path(run_dir) / "ledger.jsonl"
    if not path.exists():
        return []
    attempts: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write
            attempts[(row["stage"], row["attempt"])] = row
    return list(attempts.values())


def new_attempt(run_dir: Path, stage: str, kind: str, price: float | compute.Prices, stage_dir: Path,
                writer: bool = True) -> Attempt:
    """Close any attempt of this stage a kill left open (only the writing process does), then start the next.
    `price`: compute.Prices, or a number (the GPU price; CPUs keep the default per core-hour)."""
    prices = price if isinstance(price, compute.Prices) else compute.Prices(gpu_hour=float(price))
    previous = [a for a in read_attempts(run_dir) if a["stage"] == stage]
    for row in previous:
        if writer and row["status"] in ("started", "running"):
            _close_killed(run_dir, row, stage_dir)
    number = max((a["attempt"] for a in previous), default=0) + 1
    kind_name, count = detect_devices()
    return Attempt(Path(run_dir) / "ledger.jsonl", stage, kind, number, prices.gpu_hour, device_kind=kind_name,
                   device_count=count, prices=prices)


def _close_killed(run_dir: Path, row: dict, stage_dir: Path) -> None:
    start = datetime.fromisoformat(row["start"]).timestamp()
    newest = max((p.stat().st_mtime for p in stage_dir.rglob("*") if p.exists()), default=start)
    wall = max(0.0, newest - start)
    hours = wall * row["device_count"] / 3600
    _append(Path(run_dir) / "ledger.jsonl", {**row, "status": "killed", "wall_s": round(wall, 3),
                                             "device_hours": hours, "cost_usd": hours * row["price_per_device_hour"]})


def stage_costs(run_dir: str | Path) -> dict[str, dict]:
    """Per stage, summed over every attempt: wall_s, device_hours, cost_usd, flops, tokens, attempts."""
    out: dict[str, dict] = {}
    for a in read_attempts(run_dir):
        s = out.setdefault(a["stage"], {"kind": a["kind"], "attempts": 0, "succeeded": 0, "wall_s": 0.0,
                                        "device_hours": 0.0, "cost_usd": 0.0, "flops": 0.0,
                                        **dict.fromkeys(COUNTERS, 0)})
        s["attempts"] += 1
        s["succeeded"] += a["status"] == "done"
        for key in ("wall_s", "device_hours", "cost_usd", "flops", *COUNTERS):
            s[key] += a.get(key, 0) or 0
    return out


def headline_and_total(run_dir: str | Path, stage_order: list[str] | None = None) -> dict:
    """Headline: the last successful attempt of the final training stage. Total: every attempt of every stage."""
    attempts = read_attempts(run_dir)
    order = stage_order or list(dict.fromkeys(a["stage"] for a in attempts))
    done_training = [a for a in attempts if a["status"] == "done" and a["kind"] in TRAINING_KINDS]
    done_training.sort(key=lambda a: (order.index(a["stage"]) if a["stage"] in order else -1, a["attempt"]))
    headline = done_training[-1] if done_training else None
    total = {k: sum(a.get(k, 0) or 0 for a in attempts) for k in ("wall_s", "device_hours", "cost_usd", "flops")}
    return {"headline": headline, "total": total, "attempts": len(attempts)}


def format_cost_table(run_dir: str | Path, stage_order: list[str] | None = None) -> str:
    costs = stage_costs(run_dir)
    lines = [f"{'stage':<20} {'kind':<13} {'tries':>5} {'wall s':>9} {'dev-h':>9} {'PFLOPs':>9} {'USD':>9}"]
    for name, s in costs.items():
        lines.append(f"{name:<20} {s['kind']:<13} {s['attempts']:>5} {s['wall_s']:>9.1f} {s['device_hours']:>9.4f} "
                     f"{s['flops'] / 1e15:>9.4f} {s['cost_usd']:>9.4f}")
    summary = headline_and_total(run_dir, stage_order)
    h, t = summary["headline"], summary["total"]
    if h:
        lines.append(f"headline: {h['stage']} attempt {h['attempt']}: {h['wall_s']:.1f} s, "
                     f"{h['device_hours']:.4f} device-h, {h['flops'] / 1e15:.4f} PFLOPs, {h['cost_usd']:.4f} USD")
    else:
        lines.append("headline: no successful training stage yet")
    ratio = f" ({t['cost_usd'] / h['cost_usd']:.1f}x the headline)" if h and h["cost_usd"] else ""
    lines.append(f"total:    {summary['attempts']} attempts: {t['wall_s']:.1f} s, {t['device_hours']:.4f} device-h, "
                 f"{t['flops'] / 1e15:.4f} PFLOPs, {t['cost_usd']:.4f} USD{ratio}")
    priced = {(a.get("billed_unit", "device"), a.get("device_kind"), a.get("price_per_device_hour"))
              for a in read_attempts(run_dir)}
    lines += [f"priced:   {price} USD per {unit}-hour ({kind}); dev-h counts {unit}-hours"
              for unit, kind, price in sorted(priced, key=str)]
    return "\n".join(lines)
