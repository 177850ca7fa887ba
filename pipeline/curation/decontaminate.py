"""decontaminate: drop rows whose problem shares a word n-gram with a benchmark problem.

Texts are normalised first (lowercase, punctuation to spaces, whitespace collapsed: common.normalize), then cut
into word n-grams (n = `ngram`, 8 by default as in open-r1). A text shorter than n words is one n-gram of all its
words, so an exact copy of a short benchmark problem ("Compute $\\dbinom{16}{5}$.") is still caught. A row is
flagged by every benchmark it shares an n-gram with (the funnel counts flags per benchmark), and dropped once.

The fast path (`decontaminate`) maps each benchmark word to a small integer (a word no benchmark uses is 0 and
rules out every n-gram holding it); the n-grams of a whole chunk of rows are hashed at once in numpy (a rolling
64-bit polynomial hash over the word ids) and looked up in the sorted benchmark hashes with searchsorted. Every hit
is confirmed against the exact n-grams before it counts, so a hash collision cannot flag a row: both paths flag
exactly the same rows. `decontaminate_reference` is open-r1's algorithm kept deliberately plain (a set of n-gram
strings per benchmark, a per-row set lookup) for the benchmark and the tests to check the fast path against.
How much faster it is, and against which baseline, is benchmarks/curate_scale.py's to say.
"""

from __future__ import annotations

from itertools import repeat
from pathlib import Path

from pipeline.curation.common import ASCII_WORD_BYTES, NON_WORD, StepOutput, as_rows, words

DEFAULT_BENCHMARKS = ("math500", "aime24", "amc23", "gsm8k")
_MULT = 0x9E3779B97F4A7C15
_CHUNK_CHARS = 1 << 24  # characters per pass: bounds memory at a few hundred MB on any input size


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


class BenchmarkIndex:
    """Benchmark n-grams as word ids: exact grams -> bitmask of benchmarks, and their sorted hashes for numpy."""

    def __init__(self, problems: dict[str, list[str]], n: int):
        import numpy as np

        self.names, self.n, self._names = list(problems), n, {}
        self.vocab: dict[bytes, int] = {}  # UTF-8 word -> id from 1; 0 marks a word no benchmark uses
        self.grams: dict[tuple, int] = {}
        for bit, name in enumerate(self.names):
            for text in problems[name]:
                ids = [self.vocab.setdefault(w.encode(), len(self.vocab) + 1) for w in words(text)]
                for gram in _grams(ids, n):
                    self.grams[gram] = self.grams.get(gram, 0) | (1 << bit)
        full = np.array([g for g in self.grams if len(g) == n], dtype=np.uint64).reshape(-1, n)
        hashes = np.zeros(len(full), dtype=np.uint64)
        for j in range(n):  # the rolling hash _chunk_masks computes: h = h * MULT + id, modulo 2^64
            hashes = hashes * np.uint64(_MULT) + full[:, j]
        self.hashes = np.unique(hashes)

    def names_of(self, mask: int) -> list[str]:
        if mask not in self._names:
            self._names[mask] = [name for bit, name in enumerate(self.names) if mask >> bit & 1]
        return self._names[mask]

    def exact_mask(self, ids: list[int]) -> int:
        mask = 0
        for gram in _grams(ids, self.n):
            mask |= self.grams.get(gram, 0)
        return mask


def _normalized_bytes(text: str | None) -> bytes:
    """common.words(text) joined by spaces, as UTF-8: by a byte table for ASCII text (most of it, and several times
    faster than the regex), by the regex otherwise."""
    if not text:
        return b""
    if text.isascii():
        return text.encode().translate(ASCII_WORD_BYTES)
    return " ".join(words(text)).encode()


def _chunk_masks(texts: list[str | None], index: BenchmarkIndex) -> list[int]:
    """contamination_masks for one chunk: its texts joined into one byte string, split once, hashed in numpy."""
    import numpy as np

    n, vocab = index.n, index.vocab
    # 0xFF never occurs in UTF-8, so the separator word cannot come from a text.
    tokens = b" \xff ".join(map(_normalized_bytes, texts)).split()
    sep_id = len(vocab) + 1  # in no benchmark n-gram, like the unknown-word id 0
    lookup = {**vocab, b"\xff": sep_id}.get
    ids = np.fromiter(map(lookup, tokens, repeat(0)), dtype=np.uint64, count=len(tokens))
    seps = np.flatnonzero(ids == sep_id)
    starts = np.concatenate([[0], seps + 1])
    ends = np.concatenate([seps, [len(ids)]])
    masks = [0] * len(texts)

    def text_ids(t: int) -> list[int]:
        return ids[starts[t]:ends[t]].tolist()

    for t in np.flatnonzero((ends > starts) & (ends - starts < n)).tolist():  # short texts: one whole-text gram
        masks[t] = index.grams.get(tuple(text_ids(t)), 0)
    if len(ids) >= n and len(index.hashes):
        total = len(ids) - n + 1
        h = np.zeros(total, dtype=np.uint64)
        for j in range(n):
            h = h * np.uint64(_MULT) + ids[j:j + total]
        # Only windows of benchmark words can match: skip the rest before the (costlier) sorted lookup.
        outside = np.concatenate([[0], np.cumsum((ids == 0) | (ids == sep_id))])
        window = np.flatnonzero(outside[n:n + total] == outside[:total])
        at = np.searchsorted(index.hashes, h[window])
        hit = window[index.hashes[np.minimum(at, len(index.hashes) - 1)] == h[window]]
        for t in np.unique(np.searchsorted(seps, hit)).tolist():  # confirm hash hits on the exact n-grams
            masks[t] = index.exact_mask(text_ids(t))
    return masks


def contamination_masks(texts: list[str | None], index: BenchmarkIndex) -> list[int]:
    """Per text, the bitmask of the benchmarks it shares an n-gram with (bit i = index.names[i])."""
    masks: list[int] = []
    start = 0
    while start < len(texts):
        stop, size = start, 0
        while stop < len(texts) and (size < _CHUNK_CHARS or stop == start):
            size += len(texts[stop] or "")
            stop += 1
        masks += _chunk_masks(texts[start:stop], index)
        start = stop
    return masks


def _apply(rows: list[dict], flags: list[list[str]], names: list[str], n: int, drop: bool) -> StepOutput:
    flagged = {name: sum(name in f for f in flags) for name in names}
    info = {"ngram": n, "benchmarks": names, "flagged": flagged}
    if not drop:
        for row, f in zip(rows, flags):
            row["contaminated"] = list(f)
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
    """open-r1's decontamination, plainly: a set of n-gram strings per benchmark, then one pass over the rows per
    benchmark, each building the row's n-gram strings and looking them up (as open-r1's scripts/decontaminate.py
    does with one `ds.map` per benchmark). Same normalisation (by the regex only) and short-text rule as the fast
    path."""
    rows = as_rows(rows)
    problems = load_benchmark_problems(benchmarks)

    def ngram_strings(text) -> set[str]:
        tokens = NON_WORD.sub(" ", text.lower()).split() if text else []  # the regex alone: no byte-table path
        if len(tokens) < ngram:
            return {" ".join(tokens)} if tokens else set()
        return {" ".join(tokens[i:i + ngram]) for i in range(len(tokens) - ngram + 1)}

    flags: list[list[str]] = [[] for _ in rows]
    for name, texts in problems.items():
        lookup = set().union(*(ngram_strings(p) for p in texts))
        for row, row_flags in zip(rows, flags):
            if any(g in lookup for g in ngram_strings(row.get(column))):
                row_flags.append(name)
    return _apply(rows, flags, list(problems), ngram, drop)
