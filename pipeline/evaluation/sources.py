"""Where an evaluation's problems come from, as plain rows with ``id``, ``problem``, ``gold_answer`` and ``level``.

- ``benchmark: NAME_OR_PATH``: `pipeline.data.benchmarks.load_benchmark` (gsm8k, math500, aime24, amc23 from the
  shared data folder, or any file whose problem and answer columns it finds or is told).
- ``data: DATAREF``: any DataRef, e.g. ``{from: problems, split: test}`` (canonical rows: problem + gold_answer) or
  ``{path: x.jsonl}``; ``problem_column``/``answer_column`` name the columns when they are called otherwise. The
  other columns stay on the row, so rewards that read them (countdown's ``target`` and ``numbers``) see them.
"""

from __future__ import annotations


def load_rows(bench, ctx, where: str) -> list[dict]:
    """The rows of one EvalBenchmark (limit applied); ValueError naming `where` and the fix on a bad column."""
    if bench.benchmark:
        from pipeline.data.benchmarks import load_benchmark

        dataset = load_benchmark(bench.benchmark, problem_column=bench.problem_column,
                                 answer_column=bench.answer_column, limit=bench.limit)
        rows = dataset.to_list()
    else:
        dataset = ctx.load_dataset(bench.data)
        if bench.limit is not None:
            dataset = dataset.select(range(min(bench.limit, len(dataset))))
        rows = _canonical(dataset.to_list(), dataset.column_names, bench, where)
    if not rows:
        raise ValueError(f"{where}: benchmark '{bench.name}' has no problems; check its data and limit")
    return rows


def _canonical(rows: list[dict], columns: list[str], bench, where: str) -> list[dict]:
    problem = bench.problem_column or "problem"
    answer = bench.answer_column or ("gold_answer" if "gold_answer" in columns else "answer")
    for field_name, column in (("problem_column", problem), ("answer_column", answer)):
        if column not in columns:
            raise ValueError(f"{where}.{field_name}: benchmark '{bench.name}' has no column '{column}'; its "
                             f"columns are {', '.join(columns)}: set {field_name} to one of them")
    out = []
    for index, row in enumerate(rows):
        gold = row[answer]
        item = {**row, "problem": row[problem], "gold_answer": None if gold is None else str(gold)}
        item["id"] = str(row["id"]) if row.get("id") is not None else f"{bench.name}-{index}"
        item.setdefault("level", None)
        out.append(item)
    return out
