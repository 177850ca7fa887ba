"""What every curation step shares: the step output type, row access, and the one text normalisation.

Steps work on plain lists of canonical rows (dicts, see pipeline/data/schema.py). A `datasets.Dataset` is accepted
too and turned into a list once; the curate stage avoids even that copy for its widest column (see stages/curate.py).
Imports here stay light (no numpy, no datasets) because the CLI imports the step modules at start-up to validate
recipes.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

# Anything that is not a letter or a digit (underscore counts as punctuation here). Replacing it with a space, rather
# than deleting it, keeps LaTeX apart: "$\frac{1}{2}$" -> "frac 1 2", "x+y" -> "x y".
NON_WORD = re.compile(r"[\W_]+")
# The same rule for ASCII text as a byte table (letter -> lowercase, digit -> itself, anything else -> space): a
# bytes.translate is several times faster than the regex, and most text is ASCII.
ASCII_WORD_BYTES = bytes(c | 0x20 if chr(c).isalpha() and c < 128 else c if chr(c).isdigit() and c < 128 else 32
                         for c in range(256))


class StepOutput(NamedTuple):
    """What a step returns: the kept rows, rows dropped per reason, and step-specific figures for the funnel."""

    rows: list[dict]
    dropped: dict[str, int]
    info: dict


def as_rows(data) -> list[dict]:
    """A list of row dicts from a list (returned as is) or a `datasets.Dataset` (materialised once)."""
    if isinstance(data, list):
        return data
    if hasattr(data, "to_list"):
        return data.to_list()
    return list(data)


def normalize(text: str | None) -> str:
    """Lowercase, punctuation to spaces, whitespace collapsed: the text dedup and decontamination compare."""
    return " ".join(words(text))


def words(text: str | None) -> list[str]:
    """The words of `normalize(text)`."""
    if not text:
        return []
    if text.isascii():
        return text.encode().translate(ASCII_WORD_BYTES).decode().split()
    return NON_WORD.sub(" ", text.lower()).split()


def count_reasons(reasons: list[str | None]) -> dict[str, int]:
    """{reason: rows} for the rows that have a drop reason (None = kept), in first-seen order."""
    return dict(Counter(r for r in reasons if r is not None))


def keep_where(rows: list[dict], reasons: list[str | None]) -> StepOutput:
    """The StepOutput of a per-row decision: keep the rows whose reason is None."""
    kept = [row for row, reason in zip(rows, reasons) if reason is None]
    return StepOutput(kept, count_reasons(reasons), {})


def group_key(row: dict, index: int):
    """Samples of one problem share `id`; a row without one is a group of its own."""
    rid = row.get("id")
    return ("__row__", index) if rid is None else rid


def whitespace_tokens(text: str | None) -> int:
    return len(text.split()) if text else 0
