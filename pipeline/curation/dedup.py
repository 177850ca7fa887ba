"""dedup: exact and near-duplicate removal, on the problem or on the whole response.

`on: problem` compares problems across *different* ids: the n samples of one problem share its id and its text, and
they are all kept (that is what rejection sampling drew them for). The text of an id is the problem of its first
row; when a duplicate is found, every row of the later id goes, and the first-seen id stays. `on: response`
compares every row with every other, samples of one problem included (two identical samples teach nothing twice).

Exact: the normalised text (lowercase, punctuation to spaces, whitespace collapsed) hashed with blake2b.
Near: MinHash over word shingles, then LSH banding. Each word is hashed once (crc32, cached per distinct word, so
the result does not depend on PYTHONHASHSEED), shingles combine their words' hashes, and the `num_perm`
permutations are universal hashes (a*x + b) mod (2^31 - 1) computed in numpy over all shingles of a chunk of texts
at once. LSH banding proposes candidate pairs (bands tuned for recall, see lsh_params), and each candidate is then
confirmed by the exact Jaccard similarity of the two shingle sets, so a reported pair really is >= `threshold`;
a pair at the threshold itself is proposed ~87% of the time at 128 permutations, one at 0.9 all but always.
Shortcuts: a candidate is paired with the first member of its LSH bucket, not with every member; and duplicates
are clustered transitively (A~B and B~C drop B and C even when A and C differ), as datasketch-based dedups do.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from itertools import chain

from pipeline.curation.common import StepOutput, as_rows, group_key, keep_where, normalize, words

PRIME = (1 << 31) - 1
CHUNK_SHINGLES = 1 << 16  # shingles per numpy pass: num_perm x this x 8 bytes (64 MiB at 128 permutations)


def check(params: dict) -> None:
    if params.get("on", "problem") not in ("problem", "response"):
        raise ValueError(f"on must be 'problem' or 'response', got {params.get('on')!r}")
    threshold = params.get("threshold", 0.8)
    if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    for key in ("num_perm", "shingle_size"):
        value = params.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


class _WordHashes(dict):
    """word -> crc32, computed once per distinct word."""

    def __missing__(self, word: str) -> int:
        value = self[word] = zlib.crc32(word.encode())
        return value


def _shingle_hashes(token_lists: list[list[str]], shingle_size: int, table: _WordHashes):
    """(hashes of every shingle, index of the first shingle of each text); each text must have a word."""
    import numpy as np

    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter(map(table.__getitem__, chain.from_iterable(token_lists)), dtype=np.uint64,
                       count=int(lengths.sum()))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    end_of = np.repeat(ends, lengths)
    pos = np.arange(len(flat))
    padded = np.concatenate([flat, np.zeros(shingle_size, dtype=np.uint64)])
    combined = np.zeros(len(flat), dtype=np.uint64)
    for j in range(shingle_size):
        # Words past the end of their text count as 0, which makes a text shorter than a shingle one shingle.
        term = np.where(pos + j < end_of, padded[pos + j], np.uint64(0))
        combined = combined * np.uint64(0x100000001B3) + term
    # A shingle starts wherever a whole one fits, and at the first word of a text too short for one.
    short_start = (pos == np.repeat(starts, lengths)) & (np.repeat(lengths, lengths) < shingle_size)
    keep = (pos + shingle_size <= end_of) | short_start
    hashes = ((combined >> np.uint64(32)) ^ combined) & np.uint64(0xFFFFFFFF)
    per_text = np.maximum(lengths - shingle_size + 1, 1)
    return hashes[keep], np.concatenate([[0], np.cumsum(per_text)[:-1]])


def minhash_signatures(texts: list[str], num_perm: int = 128, shingle_size: int = 3, seed: int = 0):
    """(len(texts), num_perm) uint64 MinHash signatures of the word shingles of the normalised texts.

    A text without words gets the all-PRIME signature (equal only to other empty texts).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.integers(1, PRIME, size=num_perm, dtype=np.uint64)[:, None]
    b = rng.integers(0, PRIME, size=num_perm, dtype=np.uint64)[:, None]
    signatures = np.full((len(texts), num_perm), PRIME, dtype=np.uint64)
    table = _WordHashes()
    batch: list[tuple[int, list[str]]] = []
    budget = 0
    for i, text in enumerate(texts):
        tokens = words(text)
        if tokens:
            batch.append((i, tokens))
            budget += max(len(tokens) - shingle_size + 1, 1)
        if batch and (budget >= CHUNK_SHINGLES or i == len(texts) - 1):
            hashes, offsets = _shingle_hashes([t for _, t in batch], shingle_size, table)
            permuted = (a * hashes[None, :] + b) % np.uint64(PRIME)  # < 2^63: no uint64 overflow
            signatures[[j for j, _ in batch]] = np.minimum.reduceat(permuted, offsets, axis=1).T
            batch, budget = [], 0
    return signatures


# LSH only proposes candidates; the exact check below decides. So the bands favour recall (missed pairs cannot be
# recovered) over precision (a false candidate costs one exact comparison): at threshold 0.8 and 128 permutations a
# pair is proposed with probability ~0.87 at Jaccard 0.8, ~0.96 at 0.84, ~0.999 at 0.9, and ~0.03 at 0.5.
FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


@functools.lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising the weighted area of false positives below `threshold` and false negatives
    above it (datasketch's rule, with the weights above)."""
    import numpy as np

    best, best_error = (1, num_perm), float("inf")
    grid = np.linspace(0.0, 1.0, 201)
    below, above = grid <= threshold, grid >= threshold
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - grid ** rows) ** bands
            error = (FALSE_POSITIVE_WEIGHT * np.trapezoid(p[below], grid[below])
                     + FALSE_NEGATIVE_WEIGHT * np.trapezoid(1.0 - p[above], grid[above]))
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def _candidate_pairs(sig, bands: int, rows: int, seed: int) -> list[tuple[int, int]]:
    """(first member of an LSH bucket, another member) for every bucket of every band, without repeats."""
    import numpy as np

    mix = np.random.default_rng(seed + 1).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        keys = (sig[:, band * rows:(band + 1) * rows] * mix).sum(axis=1)  # uint64 wrap-around is fine for a key
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        leaders = order[np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))]
        pairs.update(zip(leaders[~first].tolist(), order[~first].tolist()))
    return sorted(pairs)


def _jaccards(texts: list[str], pairs: list[tuple[int, int]], shingle_size: int, block: int = 1024) -> list[float]:
    """Exact Jaccard similarity of the shingle sets of each pair. Pairs go in blocks: the shingles of a block's
    texts are hashed in one numpy pass and then dropped, so memory stays bounded however long the texts are."""
    import numpy as np

    table, out = _WordHashes(), []
    for start in range(0, len(pairs), block):
        chunk = pairs[start:start + block]
        docs = sorted({i for pair in chunk for i in pair})
        tokens = [words(texts[i]) or [""] for i in docs]  # an empty text: one empty shingle, equal to its likes
        hashes, offsets = _shingle_hashes(tokens, shingle_size, table)
        bounds = np.append(offsets, len(hashes))
        sets = {i: np.unique(hashes[bounds[k]:bounds[k + 1]]) for k, i in enumerate(docs)}
        for x, y in chunk:
            common = len(np.intersect1d(sets[x], sets[y], assume_unique=True))
            out.append(common / (len(sets[x]) + len(sets[y]) - common))
    return out


def near_duplicates(texts: list[str], threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 3,
                    seed: int = 0) -> list[int | None]:
    """For each text, the index of the earlier text it near-duplicates (its cluster's first member), else None."""
    sig = minhash_signatures(texts, num_perm, shingle_size, seed)
    pairs = _candidate_pairs(sig, *lsh_params(threshold, num_perm), seed)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (x, y), similarity in zip(pairs, _jaccards(texts, pairs, shingle_size)):
        rx, ry = root(x), root(y)
        if rx != ry and similarity >= threshold:
            parent[max(rx, ry)] = min(rx, ry)  # the earliest text of a cluster is the one kept
    roots = [root(i) for i in range(len(texts))]
    return [None if r == i else r for i, r in enumerate(roots)]


def dedup(rows, *, on: str = "problem", exact: bool = True, near: bool = True, threshold: float = 0.8,
          num_perm: int = 128, shingle_size: int = 3, seed: int = 0) -> StepOutput:
    """Drop exact then near duplicates; reasons "exact duplicate" and "near duplicate" count rows."""
    check({"on": on, "threshold": threshold, "num_perm": num_perm, "shingle_size": shingle_size})
    rows = as_rows(rows)
    if on == "problem":
        groups: dict = {}
        for i, row in enumerate(rows):
            groups.setdefault(group_key(row, i), []).append(i)
        members = list(groups.values())
    else:
        members = [[i] for i in range(len(rows))]
    texts = [rows[m[0]].get(on) or "" for m in members]
    verdict: list[str | None] = [None] * len(members)
    if exact:
        seen: set[bytes] = set()
        for g, text in enumerate(texts):
            digest = hashlib.blake2b(normalize(text).encode(), digest_size=16).digest()
            verdict[g] = "exact duplicate" if digest in seen else None
            seen.add(digest)
    if near:
        alive = [g for g in range(len(members)) if verdict[g] is None]
        for g, dup_of in zip(alive, near_duplicates([texts[g] for g in alive], threshold, num_perm, shingle_size,
                                                    seed)):
            if dup_of is not None:
                verdict[g] = "near duplicate"
    reasons: list[str | None] = [None] * len(rows)
    for g, indices in enumerate(members):
        for i in indices:
            reasons[i] = verdict[g]
    info = {"on": on, "groups": len(members), "duplicate_groups": sum(v is not None for v in verdict)}
    return keep_where(rows, reasons)._replace(info=info)
