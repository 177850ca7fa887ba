"""Language consistency of the chain of thought (R1): the share of its letters written in the target script."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

from .registry import register
from .text import completion_text, remove_spans, split_response

# Script of a letter = first word of its Unicode name, grouped: "CJK UNIFIED IDEOGRAPH-4E2D" -> han.
_SCRIPT_OF_NAME = {
    "LATIN": "latin", "CYRILLIC": "cyrillic", "GREEK": "greek", "ARABIC": "arabic", "HEBREW": "hebrew",
    "DEVANAGARI": "devanagari", "BENGALI": "bengali", "TAMIL": "tamil", "THAI": "thai", "HANGUL": "hangul",
    "HIRAGANA": "kana", "KATAKANA": "kana", "CJK": "han", "ARMENIAN": "armenian", "GEORGIAN": "georgian",
}
SCRIPTS = {script: frozenset({script}) for script in set(_SCRIPT_OF_NAME.values())} | {
    "cjk": frozenset({"han", "kana", "hangul"}),
}
_LATIN = ("en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "tr", "vi", "id", "ms", "ro",
          "hu", "sw")
LANGUAGES = {
    **{code: SCRIPTS["latin"] for code in _LATIN},
    **{code: SCRIPTS["cyrillic"] for code in ("ru", "uk", "bg", "sr", "be", "kk", "mk")},
    **{code: SCRIPTS["arabic"] for code in ("ar", "fa", "ur")},
    **{code: SCRIPTS["devanagari"] for code in ("hi", "mr", "ne")},
    "el": SCRIPTS["greek"], "he": SCRIPTS["hebrew"], "bn": SCRIPTS["bengali"], "ta": SCRIPTS["tamil"],
    "th": SCRIPTS["thai"], "hy": SCRIPTS["armenian"], "ka": SCRIPTS["georgian"],
    "zh": SCRIPTS["han"], "ja": frozenset({"han", "kana"}), "ko": frozenset({"hangul", "han"}),
}
# Math is language-neutral: $$...$$, $...$, \[...\], \(...\), LaTeX command names and lone Latin letters
# (variables: "let x be", "设x为") go before counting.
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)"))
_LATEX_AND_VARIABLES_RE = re.compile(r"\\[a-zA-Z]+|(?<![a-zA-Z])[a-zA-Z](?![a-zA-Z])")
_ASCII_WORD_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")  # the letters that _LATEX_AND_VARIABLES_RE leaves


@lru_cache(maxsize=65536)
def script_of(char: str) -> str | None:
    """The script group of a letter (see ``_SCRIPT_OF_NAME``; "other" for the rest), None for a non-letter."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return _SCRIPT_OF_NAME.get(name.split(" ", 1)[0], "other")


def target_scripts(language: str) -> frozenset[str]:
    """The scripts that count as ``language``: an ISO 639-1 code from LANGUAGES or a script name from SCRIPTS."""
    key = str(language).lower()
    if key in LANGUAGES:
        return LANGUAGES[key]
    if key in SCRIPTS:
        return SCRIPTS[key]
    choices = ", ".join(sorted(LANGUAGES) + sorted(SCRIPTS))
    raise ValueError(f"language_consistency: unknown language '{language}'. Valid: {choices}")


def script_fraction(text: str, scripts: frozenset[str]) -> float | None:
    """Share of the letters of ``text`` (math, LaTeX commands and lone Latin letters removed) in ``scripts``.

    Letters are ``str.isalpha`` characters, so digits, punctuation, symbols and spaces are ignored. None when no
    letter is left (pure-math thinking cannot be judged).
    """
    for opening, closing in _MATH_DELIMITERS:
        text = remove_spans(text, opening, closing)
    if text.isascii():  # every letter is Latin: only whether one survives the removal below is in question
        return (1.0 if "latin" in scripts else 0.0) if _ASCII_WORD_RE.search(text) else None
    # Counting each distinct character once (Counter runs in C) keeps megabyte texts cheap.
    counts = Counter(_LATEX_AND_VARIABLES_RE.sub(" ", text))
    letters = in_target = 0
    for char, count in counts.items():
        script = script_of(char)
        if script is not None:
            letters += count
            in_target += count if script in scripts else 0
    return in_target / letters if letters else None


@register("language_consistency")
def language_consistency(language: str = "en"):
    """R1's language reward: fraction of the chain-of-thought's letters written in the target language's script.

    Scores only the thinking (inside <think>...</think>, see ``split_response``) with ``script_fraction``; a
    language is known by its script, so "en" and "fr" are both Latin. Range: [0.0, 1.0], or None when there is no
    closed think block or its text has no letters outside math.
    """
    scripts = target_scripts(language)

    def language_consistency_reward(completions, **kwargs) -> list[float | None]:
        scores = []
        for completion in completions:
            thinking, _ = split_response(completion_text(completion))
            scores.append(None if thinking is None else script_fraction(thinking, scripts))
        return scores

    return language_consistency_reward
