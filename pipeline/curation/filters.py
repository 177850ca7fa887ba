"""filter: drop samples that are too short or long, truncated, degenerate, mixed-script, or that do not think.

Each check is switched off by setting its parameter to None (or False). A row is counted once, under the first
check it fails, in this order (cheapest first): "no thinking", "truncated", "too short", "too long", "repetitive",
"mixed script".

- length: tokens of the response, by the tokenizer at `tokenizer` (a local folder or hub id) or, without one, by
  whitespace; bounds are inclusive.
- repetitive: the fraction of word n-grams of the response that repeat an earlier one (1 - unique/total), above
  `max_repeat_fraction`. A healthy long chain of thought repeats some 4-grams ("let me check the"), a looping one
  repeats most of them, hence the generous default.
- mixed script: the share of letters of the chain of thought (the response when there is no thinking) that belong
  to `script` (unicode ranges below), below `min_script_fraction`. Digits, symbols and LaTeX commands are not
  letters and do not count; a stray Greek letter in a Latin text costs one letter's worth.
"""

from __future__ import annotations

import re

from pipeline.curation.common import StepOutput, as_rows, keep_where, whitespace_tokens

SCRIPTS = {
    "latin": "A-Za-z\u00c0-\u024f\u1e00-\u1eff",
    "cyrillic": "\u0400-\u04ff\u0500-\u052f",
    "greek": "\u0370-\u03ff\u1f00-\u1fff",
    "han": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "kana": "\u3040-\u30ff",
    "hangul": "\u1100-\u11ff\uac00-\ud7af",
    "arabic": "\u0600-\u06ff\u0750-\u077f",
    "hebrew": "\u0590-\u05ff",
    "devanagari": "\u0900-\u097f",
    "thai": "\u0e00-\u0e7f",
}
_NON_LETTER = re.compile(r"[\W\d_]+")


def check(params: dict) -> None:
    script = params.get("script")
    if script is not None and script not in SCRIPTS:
        raise ValueError(f"unknown script '{script}'; valid: {', '.join(SCRIPTS)}")
    for key in ("min_tokens", "max_tokens", "repeat_ngram"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{key} must be a non-negative integer or null, got {value!r}")
    for key in ("max_repeat_fraction", "min_script_fraction"):
        value = params.get(key)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise ValueError(f"{key} must be a fraction in [0, 1] or null (off), got {value!r}")


def repeat_fraction(text: str | None, n: int = 4) -> float:
    """1 - unique/total over the word n-grams of `text` (0.0 when it has fewer than n words).

    A set of tuples: as fast as a numpy version up to ~5k words (measured), and simpler."""
    tokens = text.lower().split() if text else []
    if len(tokens) < n or n < 1:
        return 0.0
    grams = list(zip(*(tokens[j:] for j in range(n))))
    return 1.0 - len(set(grams)) / len(grams)


def script_fraction(text: str | None, script: str = "latin") -> float:
    """Share of the letters of `text` that are in `script`; 1.0 for a text without letters."""
    if not text:
        return 1.0
    if text.isascii():  # the common case, decided without a regex pass
        has_letters = any(c.isalpha() for c in text)
        return 1.0 if script == "latin" or not has_letters else 0.0
    letters = _NON_LETTER.sub("", text)
    if not letters:
        return 1.0
    outside = re.sub(f"[{SCRIPTS[script]}]+", "", letters)
    return 1.0 - len(outside) / len(letters)


def token_counts(texts: list[str], tokenizer: str | None) -> list[int]:
    if tokenizer is None:
        return [whitespace_tokens(t) for t in texts]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    counts = []
    for start in range(0, len(texts), 1024):
        encoded = tok(texts[start:start + 1024], add_special_tokens=False)["input_ids"]
        counts += [len(ids) for ids in encoded]
    return counts


def filter_rows(rows, *, require_thinking: bool = True, drop_truncated: bool = True, min_tokens: int | None = None,
                max_tokens: int | None = None, tokenizer: str | None = None, repeat_ngram: int = 4,
                max_repeat_fraction: float | None = 0.5, script: str | None = "latin",
                min_script_fraction: float | None = 0.9) -> StepOutput:
    """Keep the rows that pass every switched-on check; see the module docstring for each check."""
    check({"script": script, "min_tokens": min_tokens, "max_tokens": max_tokens, "repeat_ngram": repeat_ngram,
           "max_repeat_fraction": max_repeat_fraction, "min_script_fraction": min_script_fraction})
    rows = as_rows(rows)
    lengths = None
    if min_tokens is not None or max_tokens is not None:
        lengths = token_counts([row.get("response") or "" for row in rows], tokenizer)
    reasons = []
    for i, row in enumerate(rows):
        thinking, response = row.get("thinking"), row.get("response") or ""
        if require_thinking and not (thinking or "").strip():
            reason = "no thinking"
        elif drop_truncated and row.get("finish_reason") == "length":
            reason = "truncated"
        elif min_tokens is not None and lengths[i] < min_tokens:
            reason = "too short"
        elif max_tokens is not None and lengths[i] > max_tokens:
            reason = "too long"
        elif max_repeat_fraction is not None and repeat_fraction(response, repeat_ngram) > max_repeat_fraction:
            reason = "repetitive"
        elif (script and min_script_fraction is not None
              and script_fraction(thinking or response, script) < min_script_fraction):
            reason = "mixed script"
        else:
            reason = None
        reasons.append(reason)
    return keep_where(rows, reasons)
