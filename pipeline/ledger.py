"""Compute and cost accounting: one ledger row per stage attempt, failed and interrupted ones included.

An attempt appends a `started` row when it begins and a final row when it ends. A process killed with -9 never
writes the final row; the runner closes such an attempt on its next start, estimating its wall time from the
newest file the stage wrote. FLOPs follow the usual estimate: 6·params·tokens trained, 2·params·tokens inferred.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_PRICE_PER_DEVICE_HOUR = 2.0  # USD per GPU-hour: the rental rate behind DeepSeek's headline figure
TRAINING_KINDS = ("sft", "grpo", "distill", "reward_model")
COUNTERS = ("tokens_trained", "tokens_generated", "tokens_prompt", "rows_processed")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def detect_devices() -> tuple[str, int]:
    """(kind, count) of the accelerators this process may use; ('cpu', 1) without one."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0), torch.cuda.device_count()
    except ImportError:
        pass
    return "cpu", 1


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

    def add(self, params: int | None = None, **counters: float) -> None:
        """Stages report work as it happens: ctx.ledger.add(tokens_trained=..., params=...)."""
        if params:
            self.params = int(params)
        for key, value in counters.items():
            self.counters[key] = self.counters.get(key, 0) + (value or 0)

    def row(self, status: str, wall_s: float | None = None) -> dict:
        wall = time.time() - self.start if wall_s is None else wall_s
        # Under accelerate each process drives one device (a GPU, or a CPU worker): count them all.
        devices = max(self.device_count, self.processes) if self.processes > 1 else self.device_count
        device_hours = wall * devices / 3600
        flops = 6 * self.params * self.counters.get("tokens_trained", 0) + 2 * self.params * (
            self.counters.get("tokens_generated", 0) + self.counters.get("tokens_prompt", 0))
        return {
            "stage": self.stage, "kind": self.kind, "attempt": self.attempt, "status": status,
            "start": datetime.fromtimestamp(self.start, timezone.utc).isoformat(timespec="seconds"),
            "wall_s": round(wall, 3), "device_kind": self.device_kind, "device_count": devices,
            "processes": self.processes, "params": self.params, **self.counters, "flops": float(flops),
            "device_hours": device_hours, "price_per_device_hour": self.price_per_device_hour,
            "cost_usd": device_hours * self.price_per_device_hour,
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


def new_attempt(run_dir: Path, stage: str, kind: str, price: float, stage_dir: Path, writer: bool = True) -> Attempt:
    """Close any attempt of this stage a kill left open (only the writing process does), then start the next."""
    previous = [a for a in read_attempts(run_dir) if a["stage"] == stage]
    for row in previous:
        if writer and row["status"] in ("started", "running"):
            _close_killed(run_dir, row, stage_dir)
    number = max((a["attempt"] for a in previous), default=0) + 1
    kind_name, count = detect_devices()
    return Attempt(Path(run_dir) / "ledger.jsonl", stage, kind, number, price, device_kind=kind_name,
                   device_count=count)


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
    return "\n".join(lines)
