"""Cheap stage kinds for testing the runner: `echo` writes a dataset from its config, optionally slowly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef
from pipeline.run.registry import STAGES, register_stage


@dataclass
class EchoStage:
    text: str = "hello"
    data: DataRef | None = None
    sleep_s: float = 0.0
    extra: dict = field(default_factory=dict)


def run_echo(cfg: EchoStage, ctx: StageContext) -> StageResult:
    import datasets

    rows = [{"text": cfg.text, "i": i} for i in range(3)]
    if cfg.data:
        rows += [{"text": r["text"] + "+", "i": r["i"]} for r in ctx.load_dataset(cfg.data)]
    ctx.path("partial.txt").write_text("started")
    time.sleep(cfg.sleep_s)
    ctx.save_dataset(datasets.Dataset.from_list(rows), "dataset")
    counter = ctx.run_dir / f"{ctx.name}.runs"
    counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
    ctx.ledger.add(rows_processed=len(rows))
    return StageResult(dataset="dataset", metrics={"rows": len(rows)})


if "echo" not in STAGES:
    register_stage("echo", EchoStage, help="test stage: writes its text as a dataset")(run_echo)


@dataclass
class WorkStage:
    """Reports `tokens` generated tokens per step to the ledger, `steps` times, `step_s` apart; fails when asked."""

    text: str = "work"
    data: DataRef | None = None
    steps: int = 1
    step_s: float = 0.0
    tokens: int = 10
    fail: bool = False


def run_work(cfg: WorkStage, ctx: StageContext) -> StageResult:
    import datasets

    for _ in range(cfg.steps):
        ctx.ledger.add(params=1000, tokens_generated=cfg.tokens)
        time.sleep(cfg.step_s)
    if cfg.fail:
        raise RuntimeError("work: asked to fail")
    ctx.save_dataset(datasets.Dataset.from_list([{"text": cfg.text, "i": 0}]), "dataset")
    return StageResult(dataset="dataset", metrics={"steps": cfg.steps})


if "work" not in STAGES:
    register_stage("work", WorkStage, help="test stage: reports work to the ledger step by step")(run_work)
