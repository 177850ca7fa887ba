"""Compute and cost accounting: one ledger row per stage attempt, failed and interrupted ones included.

An attempt appends a `started` row when it begins (before anything slow, such as importing torch) and a final row
when it ends. While it runs, its row so far (tokens, steps, seconds) is kept in a small progress file,
`.ledger/<stage>.<attempt>.json`, replaced atomically at every `add` (each log step, each shard) and every few
seconds by a heartbeat thread. A process killed with -9 never writes the final row; the next run closes such an
attempt from its last progress record, so a kill loses seconds of accounting, not the attempt's work. FLOPs and
prices are pipeline/run/compute.py's: 6N + attention per trained token, 2N + attention per forward token (generation,
reference, old-policy and teacher passes); a GPU is priced per GPU-hour, a CPU per core-hour.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline.run import compute
from pipeline.run.artifacts import atomic_write_json, read_json

log = logging.getLogger(__name__)
HEARTBEAT_S = 2.0  # how often a running attempt's progress file is refreshed even when no work is reported
DEFAULT_PRICE_PER_DEVICE_HOUR = compute.DEFAULT_PRICE_PER_GPU_HOUR  # the GPU price; CPUs: per core-hour
TRAINING_KINDS = ("sft", "grpo", "distill", "reward_model")
COUNTERS = ("tokens_trained", "tokens_generated", "tokens_prompt", "tokens_forward", "tokens_teacher",
            "rows_processed")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def detect_devices() -> tuple[str, int]:
    """(kind, count) of the accelerators this process may use; without one ('cpu', the cores it may run on: what
    a rented machine bills, whether or not torch keeps them all busy)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0), torch.cuda.device_count()
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
    writer: bool = False  # the process that writes the ledger (rank 0); set by begin()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def progress_path(self) -> Path:
        return progress_path(self.ledger_path.parent, self.stage, self.attempt)

    def add(self, params: int | None = None, *, model: compute.ModelShape | None = None,
            teacher: compute.ModelShape | None = None, context: float = 0.0, sequences: int = 0,
            **counters: float) -> None:
        """Stages report work as it happens: ctx.ledger.add(tokens_trained=..., model=compute.shape_of(model),
        context=...), or params=N for a model known only by its size. `context` and `sequences` describe this call's
        tokens for the attention term (compute.work_flops). Report work once its result is safe (or just before
        writing it): the progress file is updated at once, so a kill right after loses no accounting."""
        with self._lock:
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
        self.save_progress()

    def save_progress(self) -> None:
        """Replace the progress file with the row so far; a failed write (disk full) never stops the stage."""
        if not self.writer:
            return
        with self._lock:
            if self._stop.is_set():  # finished: the final row is in the ledger, no progress file may reappear
                return
            row = {**self.row("running"), "updated": time.time()}
            try:
                atomic_write_json(self.progress_path, row)
            except OSError as error:
                log.warning("ledger progress not saved (%s); accounting may miss this attempt's last seconds", error)

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
        """Append the `started` row first (cheap: a kill from here on leaves a row to close), then find the devices
        (importing torch takes seconds) and keep the progress file fresh from a heartbeat thread."""
        self.writer = True
        _append(self.ledger_path, self.row("started", 0.0))
        self.device_kind, self.device_count = detect_devices()
        self.save_progress()
        threading.Thread(target=self._heartbeat, name=f"ledger-{self.stage}", daemon=True).start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.save_progress()

    def final_row(self, status: str) -> dict:
        """The row `finish` will append, computed now (the runner puts it in metrics.json before DONE)."""
        with self._lock:
            return self.row(status)

    def finish(self, status: str, row: dict | None = None) -> dict:
        row = row or self.final_row(status)
        with self._lock:
            self._stop.set()
        _append(self.ledger_path, row)
        with contextlib.suppress(OSError):
            self.progress_path.unlink(missing_ok=True)
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


def progress_path(run_dir: Path, stage: str, attempt: int) -> Path:
    return Path(run_dir) / ".ledger" / f"{stage}.{attempt}.json"


def new_attempt(run_dir: Path, stage: str, kind: str, price: float | compute.Prices, stage_dir: Path,
                writer: bool = True) -> Attempt:
    """Close any attempt of this stage a kill left open (only the writing process does), then number the next.
    Cheap on purpose: devices are found in `begin`, after the started row is on disk. `price`: compute.Prices, or
    a number (the GPU price; CPUs keep the default per core-hour)."""
    prices = price if isinstance(price, compute.Prices) else compute.Prices(gpu_hour=float(price))
    previous = [a for a in read_attempts(run_dir) if a["stage"] == stage]
    if writer:
        close_open_attempts(run_dir, stage_dirs={stage: stage_dir}, stages={stage})
    number = max((a["attempt"] for a in previous), default=0) + 1
    return Attempt(Path(run_dir) / "ledger.jsonl", stage, kind, number, prices.gpu_hour, prices=prices)


def close_open_attempts(run_dir: Path, done_rows: dict | None = None, stage_dirs: dict | None = None,
                        stages: set | None = None) -> int:
    """Append a final row for every attempt a kill left open; returns how many. An attempt whose stage's DONE
    names it (`done_rows`: stage -> the final row DONE carries) died after DONE and before its row: it is done.
    Any other one is `killed`, with the work and seconds of its last progress record."""
    closed = 0
    for row in read_attempts(run_dir):
        if row["status"] not in ("started", "running") or (stages is not None and row["stage"] not in stages):
            continue
        done = (done_rows or {}).get(row["stage"])
        if done and done.get("attempt") == row["attempt"]:
            final = done
        else:
            final = _killed_row(run_dir, row, (stage_dirs or {}).get(row["stage"]))
        _append(Path(run_dir) / "ledger.jsonl", final)
        progress_path(run_dir, row["stage"], row["attempt"]).unlink(missing_ok=True)
        closed += 1
    return closed


def _killed_row(run_dir: Path, row: dict, stage_dir: Path | None) -> dict:
    progress = read_json(progress_path(run_dir, row["stage"], row["attempt"]), None)
    if progress:  # the row as of the last progress save: its work, and the seconds until then
        wall = max(0.0, progress.pop("updated") - datetime.fromisoformat(row["start"]).timestamp())
        row = {**progress, "wall_s": wall}
    else:  # killed before its first progress save: only the newest file it wrote says how long it ran
        start = datetime.fromisoformat(row["start"]).timestamp()
        files = stage_dir.rglob("*") if stage_dir and stage_dir.is_dir() else []
        newest = max((p.stat().st_mtime for p in files if p.exists()), default=start)
        row = {**row, "wall_s": max(0.0, newest - start)}
    hours = row["wall_s"] * row["device_count"] / 3600
    return {**row, "status": "killed", "wall_s": round(row["wall_s"], 3), "device_hours": hours,
            "cost_usd": hours * row["price_per_device_hour"]}


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
