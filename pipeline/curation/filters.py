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
  to `script` (rewards.language's rule: a letter's script is the first word of its Unicode name), below
  `min_script_fraction`. Math spans, LaTeX commands, lone Latin letters (variables), digits and symbols do not
  count; a stray Greek letter in a Latin text costs one letter's worth.
"""

from __future__ import annotations

from pipeline.curation.common import StepOutput, as_rows, keep_where, whitespace_tokens
from rewards import language
from rewards.text import repeat_fraction

SCRIPTS = language.SCRIPTS


def check(params: dict) -> None:
    script = params.get("script")
    if script is not None and script not in SCRIPTS:
        raise ValueError(f"unknown script '{script}'; valid: {', '.join(sorted(SCRIPTS))}")
    for key in ("min_tokens", "max_tokens", "repeat_ngram"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{key} must be a non-negative integer or null, got {value!r}")
    for key in ("max_repeat_fraction", "min_script_fraction"):
        value = params.get(key)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise ValueError(f"{key} must be a fraction in [0, 1] or null (off), got {value!r}")


def script_fraction(text: str | None, script: str = "latin") -> float:
    """Share of the letters of `text` in `script` (the language reward's rule); 1.0 for a text without letters."""
    fraction = language.script_fraction(text, SCRIPTS[script]) if text else None
    return 1.0 if fraction is None else fraction


def token_counts(texts: list[str], tokenizer: str | None) -> list[int]:
    if tokenizer is None:
        return [whitespace_tokens(t) for t in texts]
    from rewards.tokenizer import shared_tokenizer

    tok = shared_tokenizer(tokenizer)
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
