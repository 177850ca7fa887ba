"""Evaluation benchmarks by name (gsm8k, math500, aime24, amc23), or any file with a problem and an answer column.

Every benchmark loads as a Dataset with the same four columns: ``id`` (str), ``problem`` (str), ``gold_answer``
(str: the final answer only, e.g. the text after GSM8K's ``####``, AMC's float 27.0 as "27") and ``level`` (int,
MATH-500's difficulty 1-5; None elsewhere). A named benchmark reads its file shipped in the package
(`benchmark_files/`, with their sources and licenses in its README.md), so it loads offline from a fresh clone or a
wheel; the hub id is where that file came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets

from pipeline.data.adapters import gsm8k_rationale
from pipeline.data.sources import load_rows_or_dataset
from rewards.text import boxed_contents

FILES_DIR = Path(__file__).resolve().parent / "benchmark_files"

PROBLEM_COLUMNS = ("problem", "question", "prompt", "input")
ANSWER_COLUMNS = ("answer", "gold_answer", "final_answer", "target", "solution")
ID_COLUMNS = ("id", "unique_id", "uuid", "problem_id")
FEATURES = datasets.Features({"id": datasets.Value("string"), "problem": datasets.Value("string"),
                              "gold_answer": datasets.Value("string"), "level": datasets.Value("int64")})


@dataclass(frozen=True)
class Benchmark:
    help: str
    file: str                   # in benchmark_files/
    hub_id: str
    hub_split: str
    hub_config: str | None = None
    level_column: str | None = None


BENCHMARKS = {
    "gsm8k": Benchmark("GSM8K test: 1,319 grade-school word problems, integer answers (after '####')",
                       "gsm8k_test.jsonl", "openai/gsm8k", "test", hub_config="main"),
    "math500": Benchmark("MATH-500: 500 competition problems of the MATH test set, LaTeX answers, levels 1-5",
                         "math500.jsonl", "HuggingFaceH4/MATH-500", "test", level_column="level"),
    "aime24": Benchmark("AIME 2024 I and II: 30 olympiad problems, integer answers 0-999",
                        "aime24.jsonl", "HuggingFaceH4/aime_2024", "train"),
    "amc23": Benchmark("AMC 2023: 40 competition problems, numeric answers",
                       "amc23.jsonl", "math-ai/amc23", "test"),
}


def benchmark_file(name: str) -> Path:
    """The packaged file a named benchmark loads (what a fingerprint hashes)."""
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark '{name}'. Available: {', '.join(BENCHMARKS)}")
    return FILES_DIR / BENCHMARKS[name].file


def list_benchmarks() -> list[tuple[str, str]]:
    """(name, one-line help) of every named benchmark."""
    return [(name, spec.help) for name, spec in BENCHMARKS.items()]


def normalize_gold(value) -> str | None:
    """The final answer as a string: a rationale's '#### N' gives N, an integral float gives an integer."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if "####" in text:
        text = gsm8k_rationale(text)[1]
    if "\\boxed{" in text:
        text = (boxed_contents(text) or [""])[-1] or text  # a whole solution given as the answer: its last \boxed{} is the answer
    return text


def _first_present(names: tuple, columns: list[str], what: str, source: str, flag: str) -> str:
    for name in names:
        if name in columns:
            return name
    raise ValueError(f"{source}: no {what} column among {columns}; name it with {flag}=...")


def load_benchmark(name_or_path: str, problem_column: str | None = None, answer_column: str | None = None,
                   limit: int | None = None, split: str | None = None) -> datasets.Dataset:
    """A benchmark as Dataset[id, problem, gold_answer, level].

    A name from `list_benchmarks()`, or a local file/folder or hub id whose problem and answer columns are found
    by name (problem/question/prompt/input; answer/gold_answer/final_answer/target/solution) unless given;
    `split` picks the split of a hub id or saved DatasetDict (a hub id defaults to "test").
    """
    if name_or_path in BENCHMARKS:
        spec = BENCHMARKS[name_or_path]
        raw = load_rows_or_dataset(str(benchmark_file(name_or_path)), limit=limit)
        prefix, level_column = name_or_path, spec.level_column
    elif "/" in name_or_path or Path(name_or_path).exists():
        hub = not Path(name_or_path).exists()
        raw = load_rows_or_dataset(name_or_path, split=split or ("test" if hub else None), limit=limit)
        prefix, level_column = Path(name_or_path).stem, "level" if "level" in raw.column_names else None
    else:
        raise ValueError(f"Unknown benchmark '{name_or_path}'. Available: {', '.join(BENCHMARKS)} "
                         "(or a path to a jsonl/parquet/csv file with problem and answer columns)")
    return _to_benchmark(raw, prefix, problem_column, answer_column, level_column, source=name_or_path)


def _to_benchmark(raw: datasets.Dataset, prefix: str, problem_column: str | None, answer_column: str | None,
                  level_column: str | None, source: str) -> datasets.Dataset:
    columns = raw.column_names
    problem_column = problem_column or _first_present(PROBLEM_COLUMNS, columns, "problem", source, "problem_column")
    answer_column = answer_column or _first_present(ANSWER_COLUMNS, columns, "answer", source, "answer_column")
    for given in (problem_column, answer_column):
        if given not in columns:
            raise ValueError(f"{source}: no column '{given}'; it has {columns}")
    id_column = next((name for name in ID_COLUMNS if name in columns), None)
    rows = []
    for index, row in enumerate(raw):
        level = row.get(level_column) if level_column else None
        rows.append({
            "id": f"{prefix}-{row[id_column] if id_column and row[id_column] is not None else index}",
            "problem": row[problem_column],
            "gold_answer": normalize_gold(row[answer_column]),
            "level": _as_level(level),
        })
    return datasets.Dataset.from_list(rows, features=FEATURES)


def _as_level(value) -> int | None:
    """MATH levels come as 3 or 'Level 3'."""
    if value is None:
        return None
    digits = "".join(c for c in str(value) if c.isdigit())
    return int(digits) if digits else None
