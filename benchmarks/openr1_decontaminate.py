"""open-r1's decontamination, as its scripts/decontaminate.py runs it (huggingface/open-r1), for curate_scale.

The algorithm, restated: a text is normalised by lowercasing, stripping and splitting on whitespace (punctuation
stays attached to words); its n-grams are the space-joined runs of n consecutive words (none when it has fewer than
n words: no rule for short problems). Per benchmark, a dict from every n-gram of every problem to the problems
holding it. A row is flagged for a benchmark when any of its n-grams is a key of that dict. The script runs one
`Dataset.map(find_contaminated, num_proc=8)` per benchmark, each adding a `contaminated_<name>` column.

Two timings of the same function: `flag_with_map` (the script's way: datasets.map, `num_proc` processes, the rows
already a Dataset as the script's load_dataset gives it) and `flag_with_loop` (a plain loop in this process).
"""

from __future__ import annotations

from collections import defaultdict

NUM_PROC = 8  # what open-r1's script passes to Dataset.map


def normalize(text: str) -> str:
    return " ".join(text.lower().strip().split())


def ngrams(text: str, n: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def build_lookup(problems: list[str], n: int) -> dict[str, set[int]]:
    """n-gram -> the indexes of the problems that hold it."""
    lookup: dict[str, set[int]] = defaultdict(set)
    for i, problem in enumerate(problems):
        for gram in ngrams(normalize(problem), n):
            lookup[gram].add(i)
    return lookup


def row_ngrams(text: str, n: int) -> set[str]:
    return set(ngrams(normalize(text), n))


def build_lookups(benchmarks: dict[str, list[str]], n: int = 8) -> dict[str, dict]:
    return {name: build_lookup(problems, n) for name, problems in benchmarks.items()}


def flag_with_loop(texts: list[str], lookups: dict[str, dict], n: int = 8) -> list[list[str]]:
    """Per text, the benchmarks that flag it; one pass per benchmark, as the script's maps do."""
    flags: list[list[str]] = [[] for _ in texts]
    for name, lookup in lookups.items():
        for text, row_flags in zip(texts, flags):
            if any(gram in lookup for gram in row_ngrams(text, n)):
                row_flags.append(name)
    return flags


def _marker(name: str, lookup: dict, column: str, n: int):
    def find_contaminated(row):
        row[f"contaminated_{name}"] = any(gram in lookup for gram in row_ngrams(row[column], n))
        return row

    return find_contaminated


def flag_with_map(dataset, lookups: dict[str, dict], column: str = "problem", n: int = 8,
                  num_proc: int = NUM_PROC) -> list[list[str]]:
    """The script's way: one dataset.map(num_proc) per benchmark adding contaminated_<name>; per row, the names."""
    for name, lookup in lookups.items():
        dataset = dataset.map(_marker(name, lookup, column, n), num_proc=num_proc)
    columns = {name: dataset[f"contaminated_{name}"] for name in lookups}
    return [[name for name in lookups if columns[name][i]] for i in range(len(dataset))]
