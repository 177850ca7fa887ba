"""dedup: exact and near-duplicate removal, on the problem or on the whole response.

`on: problem` compares problems across *different* ids: the n samples of one problem share its id and its text, and
they are all kept (that is what rejection sampling drew them for). The text of an id is the problem of its first
row; when a duplicate is found, every row of the later id goes, and the first-seen id stays. `on: response`
compares every row with every other, samples of one problem included (two identical samples teach nothing twice).

Exact: the normalised text (lowercase, punctuation to spaces, whitespace collapsed) hashed with blake2b.
Near: datasketch's MinHash over word shingles and its MinHashLSH index, with bands weighted for recall (a missed
pair cannot be recovered; a false candidate costs one exact comparison): every candidate the index proposes is then
confirmed by the exact Jaccard similarity of the two shingle sets, so a reported pair really is >= `threshold`.
Duplicates are clustered transitively (A~B and B~C drop B and C even when A and C differ), as datasketch-based
dedups do.
"""

from __future__ import annotations

import hashlib

from pipeline.curation.common import StepOutput, as_rows, group_key, keep_where, normalize, words

# The index's weights favour recall: at threshold 0.8 and 128 permutations (14 bands of 9 rows) a pair is proposed
# with probability ~0.87 at Jaccard 0.8, ~0.96 at 0.84, ~0.999 at 0.9 and ~0.03 at 0.5 (1 - (1 - s**9)**14); a false
# candidate costs one exact comparison, a missed pair is lost.
FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


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


def shingles(text: str, shingle_size: int) -> set[bytes]:
    """The word shingles of the normalised text; a text shorter than a shingle is one shingle (empty: b"")."""
    tokens = words(text)
    return {" ".join(tokens[i:i + shingle_size]).encode() for i in range(max(len(tokens) - shingle_size + 1, 1))}


def near_duplicates(texts: list[str], threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 3,
                    seed: int = 0) -> list[int | None]:
    """For each text, the index of the earlier text it near-duplicates (its cluster's first member), else None."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT))
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    template = MinHash(num_perm=num_perm, seed=seed, scheme="affine64")  # 64-bit: no shingle collisions at scale
    for i, text in enumerate(texts):
        own = shingles(text, shingle_size)
        signature = template.copy()
        signature.update_batch(own)
        for j in sorted(lsh.query(signature)):
            other = shingles(texts[j], shingle_size)  # recomputed: memory stays bounded however long the texts
            rx, ry = root(j), root(i)
            if rx != ry and len(own & other) >= threshold * len(own | other):
                parent[max(rx, ry)] = min(rx, ry)  # the earliest text of a cluster is the one kept
        lsh.insert(i, signature, check_duplication=False)
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
