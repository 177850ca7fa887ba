"""The `tasks` stage: procedural problems with verifiable answers and reference chains of thought, as a dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.run.context import StageContext, StageResult
from pipeline.run.registry import register_stage


@dataclass
class TasksStage:
    task: str  # a registered task: reasonforge ls
    splits: dict = field(default_factory=lambda: {"train": 1000, "test": 200})  # split name -> rows
    params: dict = field(default_factory=dict)  # the task's own parameters (digits, ops, ...)

    def __post_init__(self):
        from pipeline.tasks import get_task

        get_task(self.task)  # raises with the available names
        for split, n in self.splits.items():
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"splits.{split} must be a non-negative integer, got {n!r}")


@register_stage("tasks", TasksStage, help="procedural problems (arithmetic, countdown, ...) with disjoint splits")
def run(cfg: TasksStage, ctx: StageContext) -> StageResult:
    import datasets

    from pipeline.data.schema import trace_row
    from pipeline.tasks import generate_splits

    splits = generate_splits(cfg.task, dict(cfg.splits), seed=ctx.seed, **cfg.params)
    out = {}
    for split, rows in splits.items():
        canonical = [_as_trace(row, trace_row) for row in rows]
        out[split] = datasets.Dataset.from_list(canonical)
    ctx.save_dataset(datasets.DatasetDict(out), "dataset")
    ctx.ledger.add(rows_processed=sum(len(r) for r in splits.values()))
    counts = {split: len(rows) for split, rows in splits.items()}
    return StageResult(dataset="dataset", metrics={"rows": counts})


def _as_trace(row: dict, trace_row) -> dict:
    """A task row as a canonical trace: the reference solution is the thinking, the gold answer the answer."""
    extra = {k: v for k, v in row.items() if k not in ("id", "problem", "solution", "gold_answer", "task")}
    return trace_row(row["problem"], row["solution"], str(row["gold_answer"]), id=row["id"], source=row["task"],
                     gold_answer=str(row["gold_answer"]), **extra)
