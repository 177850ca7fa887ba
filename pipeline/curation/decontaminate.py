"""decontaminate: drop rows whose problem shares a word n-gram with a benchmark problem.

Texts are normalised first (lowercase, punctuation to spaces, whitespace collapsed: common.normalize), then cut
into word n-grams (n = `ngram`, 8 by default as in open-r1). A text shorter than n words is one n-gram of all its
words, so an exact copy of a short benchmark problem ("Compute $\\dbinom{16}{5}$.") is still caught. A row is
flagged by every benchmark it shares an n-gram with (the funnel counts flags per benchmark), and dropped once.

The fast path (`decontaminate`) maps each benchmark word to a small integer, so a row word that no benchmark uses
(most of them) rules out every n-gram that contains it; the remaining n-grams of all rows are hashed together in
numpy (a rolling 64-bit polynomial hash) and looked up in the sorted benchmark hashes with searchsorted. Every hit
is confirmed against the exact n-grams before it counts, so a hash collision cannot flag a row: both paths flag
exactly the same rows. `decontaminate_reference` is open-r1's algorithm kept deliberately plain (a set of n-gram
strings per benchmark, a per-row set lookup) for the benchmark and the tests to check the fast path against.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.curation.common import StepOutput, as_rows, normalize, words

DEFAULT_BENCHMARKS = ("math500", "aime24", "amc23", "gsm8k")
_MULT = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_CHUNK_WORDS = 1 << 22  # words hashed per numpy pass: bounds memory at a few hundred MB on any input size


def check(params: dict) -> None:
    benchmarks = params.get("benchmarks", DEFAULT_BENCHMARKS)
    if not isinstance(benchmarks, (list, tuple, dict)) or not benchmarks:
        raise ValueError("benchmarks must be a non-empty list of names (math500, aime24, amc23, gsm8k) or paths")
    ngram = params.get("ngram", 8)
    if not isinstance(ngram, int) or isinstance(ngram, bool) or ngram < 1:
        raise ValueError(f"ngram must be a positive integer, got {ngram!r}")


def load_benchmark_problems(benchmarks) -> dict[str, list[str]]:
    """{name: problems}: names and paths go through pipeline.data.benchmarks.load_benchmark (a path's name is its
    file stem); a dict maps a name to a name/path or to the problems themselves."""
    items = benchmarks.items() if isinstance(benchmarks, dict) else ((None, b) for b in benchmarks)
    out: dict[str, list[str]] = {}
    for name, source in items:
        if isinstance(source, (list, tuple)):
            out[name] = [str(p) for p in source]
            continue
        from pipeline.data.benchmarks import load_benchmark

        out[name or (Path(source).stem if Path(source).exists() else source)] = list(
            load_benchmark(source)["problem"])
    return out


def _grams(tokens: list, n: int) -> list[tuple]:
    """The word n-grams of a text; one gram of all its words when it is shorter than n, none when empty."""
    if len(tokens) < n:
        return [tuple(tokens)] if tokens else []
    return list(zip(*(tokens[j:] for j in range(n))))


def _gram_hash(ids: tuple) -> int:
    """The rolling hash the numpy pass computes, in Python: h = h * MULT + id, modulo 2^64."""
    h = 0
    for i in ids:
        h = (h * _MULT + i) & _MASK
    return h


class BenchmarkIndex:
    """Benchmark n-grams as word ids: exact grams -> bitmask of benchmarks, and their sorted hashes for numpy."""

    def __init__(self, problems: dict[str, list[str]], n: int):
        import numpy as np

        self.names, self.n = list(problems), n
        self.vocab: dict[str, int] = {}  # ids start at 1: 0 marks a word no benchmark uses
        self.grams: dict[tuple, int] = {}
        for bit, name in enumerate(self.names):
            for text in problems[name]:
                ids = [self.vocab.setdefault(w, len(self.vocab) + 1) for w in words(text)]
                for gram in _grams(ids, n):
                    self.grams[gram] = self.grams.get(gram, 0) | (1 << bit)
        full = sorted({_gram_hash(g) for g in self.grams if len(g) == n})
        self.hashes = np.array(full, dtype=np.uint64)

    def names_of(self, mask: int) -> list[str]:
        return [name for bit, name in enumerate(self.names) if mask >> bit & 1]

    def exact_mask(self, ids: list[int]) -> int:
        mask = 0
        for gram in _grams(ids, self.n):
            mask |= self.grams.get(gram, 0)
        return mask


def _candidates(id_lists: list[list[int]], index: BenchmarkIndex) -> set[int]:
    """Positions in id_lists of the texts with at least one full n-gram whose hash is a benchmark n-gram's."""
    import numpy as np

    n = index.n
    lengths = np.fromiter((len(x) for x in id_lists), dtype=np.int64, count=len(id_lists))
    flat = np.fromiter((i for x in id_lists for i in x), dtype=np.uint64, count=int(lengths.sum()))
    if len(flat) < n or len(index.hashes) == 0:
        return set()
    total = len(flat) - n + 1
    h = np.zeros(total, dtype=np.uint64)
    for j in range(n):
        h = h * np.uint64(_MULT) + flat[j:j + total]
    zeros = np.concatenate([[0], np.cumsum(flat == 0)])
    end_of = np.repeat(np.cumsum(lengths), lengths)[:total]
    # A window is a real n-gram when it stays inside its text and every word in it is a benchmark word.
    valid = (np.arange(total) + n <= end_of) & (zeros[n:n + total] == zeros[:total])
    at = np.searchsorted(index.hashes, h[valid])
    hit = index.hashes[np.minimum(at, len(index.hashes) - 1)] == h[valid]
    text_of = np.repeat(np.arange(len(id_lists)), lengths)[:total][valid]
    return set(np.unique(text_of[hit]).tolist())


def contamination_masks(texts: list[str | None], index: BenchmarkIndex) -> list[int]:
    """Per text, the bitmask of the benchmarks it shares an n-gram with (bit i = index.names[i])."""
    get = index.vocab.get
    masks = [0] * len(texts)
    batch: list[int] = []
    batch_ids: list[list[int]] = []
    budget = 0
    for t, text in enumerate(texts):
        ids = [get(w, 0) for w in words(text)]
        if len(ids) < index.n:  # short texts: one whole-text gram, looked up directly
            masks[t] = index.grams.get(tuple(ids), 0) if ids else 0
            continue
        batch.append(t)
        batch_ids.append(ids)
        budget += len(ids)
        if budget >= _CHUNK_WORDS:
            for k in _candidates(batch_ids, index):  # confirm hash hits on the exact n-grams
                masks[batch[k]] = index.exact_mask(batch_ids[k])
            batch, batch_ids, budget = [], [], 0
    for k in _candidates(batch_ids, index):  # the last, partial batch
        masks[batch[k]] = index.exact_mask(batch_ids[k])
    return masks


def _apply(rows: list[dict], flags: list[list[str]], names: list[str], n: int, drop: bool) -> StepOutput:
    flagged = {name: sum(name in f for f in flags) for name in names}
    info = {"ngram": n, "benchmarks": names, "flagged": flagged}
    if not drop:
        for row, f in zip(rows, flags):
            row["contaminated"] = f
        return StepOutput(rows, {}, info)
    kept = [row for row, f in zip(rows, flags) if not f]
    dropped = len(rows) - len(kept)
    return StepOutput(kept, {"contaminated": dropped} if dropped else {}, info)


def decontaminate(rows, *, benchmarks=DEFAULT_BENCHMARKS, ngram: int = 8, column: str = "problem",
                  drop: bool = True) -> StepOutput:
    """Flag rows whose `column` shares an `ngram`-word n-gram with a benchmark problem; drop them unless `drop` is
    false, which instead writes the list of flagging benchmarks to a `contaminated` column."""
    check({"benchmarks": benchmarks, "ngram": ngram})
    rows = as_rows(rows)
    index = BenchmarkIndex(load_benchmark_problems(benchmarks), ngram)
    masks = contamination_masks([row.get(column) for row in rows], index)
    return _apply(rows, [index.names_of(m) for m in masks], index.names, ngram, drop)


def decontaminate_reference(rows, *, benchmarks=DEFAULT_BENCHMARKS, ngram: int = 8, column: str = "problem",
                            drop: bool = True) -> StepOutput:
    """open-r1's decontamination, plainly: a set of n-gram strings per benchmark, then per row and per benchmark,
    whether any of the row's n-gram strings is in the set. Same normalisation and short-text rule as the fast path."""
    rows = as_rows(rows)
    problems = load_benchmark_problems(benchmarks)

    def ngram_strings(text) -> set[str]:
        tokens = normalize(text).split()
        if len(tokens) < ngram:
            return {" ".join(tokens)} if tokens else set()
        return {" ".join(tokens[i:i + ngram]) for i in range(len(tokens) - ngram + 1)}

    lookups = {name: set().union(*(ngram_strings(p) for p in texts)) for name, texts in problems.items()}
    flags = []
    for row in rows:
        grams = ngram_strings(row.get(column))
        flags.append([name for name, lookup in lookups.items() if any(g in lookup for g in grams)])
    return _apply(rows, flags, list(problems), ngram, drop)
