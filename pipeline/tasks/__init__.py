"""Procedural problem generators with verifiable answers, by name.

    >>> splits = generate_splits("multiplication", {"train": 4000, "test": 200}, seed=0)
    >>> splits["test"][0]["problem"], splits["test"][0]["solution"].splitlines()[-1]

A row is ``{id, problem, gold_answer, solution, task, **task columns}``; ``solution`` is the reference chain of
thought without think tags, one ``expr=value`` step per line (see `pipeline.tasks.common`). `to_trace_row` turns a
row into the canonical trace schema for SFT. See `pipeline.tasks.splits` for how splits stay disjoint and stable.
"""

from __future__ import annotations

from pipeline.data.schema import trace_row
from pipeline.tasks import arithmetic, column_sum, countdown, multiplication
from pipeline.tasks.common import Task, evaluate, solution_lines_ok
from pipeline.tasks.countdown import check_countdown
from pipeline.tasks.splits import check_capacity, draw_split, resolve_params, split_weights

TASKS: dict[str, Task] = {task.name: task for task in (arithmetic.TASK, column_sum.TASK, multiplication.TASK, countdown.TASK)}

__all__ = ["TASKS", "Task", "check_countdown", "evaluate", "generate_splits", "get_task", "list_tasks",
           "solution_lines_ok", "to_trace_row"]


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"Unknown task '{name}'. Available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def list_tasks() -> list[tuple[str, str, dict]]:
    """(name, one-line help, params with their defaults) of every task."""
    return [(task.name, task.help, dict(task.params)) for task in sorted(TASKS.values(), key=lambda t: t.name)]


def generate_splits(task_name: str, sizes: dict[str, int], seed: int, *, shares: dict[str, float] | None = None,
                    **params) -> dict[str, list[dict]]:
    """Disjoint splits of a task, e.g. ``sizes={"train": 4000, "test": 200}``; deterministic in (seed, params).

    A split's rows do not depend on the other splits' sizes. `shares` overrides the weights that decide which
    split owns which problem (default: train 9, any other split 1). Raises ValueError when a split asks for more
    problems than its share of the problem space holds.
    """
    task = get_task(task_name)
    if not sizes:
        raise ValueError("sizes is empty: name at least one split, e.g. {'train': 1000, 'test': 100}")
    params = resolve_params(task, params)
    weights = split_weights(sizes, shares)
    space = check_capacity(task, params, sizes, weights)
    return {name: draw_split(task, params, name, size, seed, weights, space) for name, size in sizes.items()}


def to_trace_row(row: dict) -> dict:
    """A task row as a canonical trace: thinking = the reference solution, answer = the gold answer (verified)."""
    return trace_row(row["problem"], row["solution"], row["gold_answer"], id=row["id"], source=row["task"],
                     gold_answer=row["gold_answer"], verified=True)
