"""Length and repetition shaping: open-r1's cosine length scaling, DAPO's soft overlong penalty, n-gram repetition."""

from __future__ import annotations

import math

from .accuracy import correctness
from .registry import register
from .text import column, completion_text, repeat_fraction


def completion_lengths(texts: list[str], tokenizer: str | None) -> list[float]:
    """Lengths of ``texts`` in tokens of ``tokenizer`` (a hub id or path, no special tokens), or characters / 4."""
    if tokenizer is None:
        return [len(text) / 4 for text in texts]
    from .tokenizer import shared_tokenizer

    tok = shared_tokenizer(tokenizer)
    return [float(len(ids)) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


def _check_positive(reward: str, **values) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{reward}: {name} must be a positive number, got {value!r}")


@register("cosine_length")
def cosine_length(
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    max_len: int = 1000,
    gold_column: str = "gold_answer",
    tokenizer: str | None = None,
    timeout_s: float = 2.0,
):
    """open-r1's cosine length scaling: short correct answers earn most, short wrong answers lose most.

    Correctness is ``accuracy``'s (``correctness``). With progress = min(length / max_len, 1) over the whole
    completion (tokens of ``tokenizer``, else characters / 4) and c = cos(pi * progress): correct ->
    min_value_correct + (max_value_correct - min_value_correct) * (1 + c) / 2, i.e. max_value_correct at length 0
    down to min_value_correct at max_len and beyond; wrong -> from min_value_wrong at length 0 up to
    max_value_wrong at max_len. Range: [min, max] of the four values, or None when the gold is unparseable.
    """
    _check_positive("cosine_length", max_len=max_len, timeout_s=timeout_s)

    def cosine_length_reward(completions, **kwargs) -> list[float | None]:
        golds = column(kwargs, gold_column, "cosine_length", len(completions))
        texts = [completion_text(c) for c in completions]
        scores = []
        for text, gold, length in zip(texts, golds, completion_lengths(texts, tokenizer)):
            correct = correctness(text, gold, float(timeout_s))
            if correct is None:
                scores.append(None)
                continue
            cosine = math.cos(math.pi * min(length / max_len, 1.0))
            low, high = (min_value_correct, max_value_correct) if correct else (max_value_wrong, min_value_wrong)
            scores.append(low + 0.5 * (high - low) * (1.0 + cosine))
        return scores

    return cosine_length_reward


@register("soft_overlong")
def soft_overlong(max_len: int = 4096, cache_len: int = 1024, tokenizer: str | None = None):
    """DAPO's soft overlong punishment: 0 up to max_len - cache_len, then linearly down to -1 at max_len, -1 beyond.

    Length of the whole completion in tokens of ``tokenizer``, else characters / 4. Range: [-1.0, 0.0]; never None.
    """
    _check_positive("soft_overlong", max_len=max_len, cache_len=cache_len)
    if cache_len > max_len:
        raise ValueError(f"soft_overlong: cache_len ({cache_len}) must not exceed max_len ({max_len})")
    free = max_len - cache_len

    def soft_overlong_reward(completions, **kwargs) -> list[float | None]:
        lengths = completion_lengths([completion_text(c) for c in completions], tokenizer)
        return [0.0 if n <= free else max(-1.0, (free - n) / cache_len) for n in lengths]

    return soft_overlong_reward


def repetition_score(text: str, ngram_size: int, max_penalty: float) -> float:
    """max_penalty * the share of repeated word n-grams (``repeat_fraction``); 0.0 below ``ngram_size`` words."""
    return repeat_fraction(text, ngram_size) * max_penalty


@register("repetition_penalty")
def repetition_penalty(ngram_size: int = 3, max_penalty: float = -1.0):
    """open-r1's repetition penalty: the share of repeated word n-grams in the completion, scaled by max_penalty.

    Scores the whole completion with ``repetition_score``. Range: [max_penalty, 0.0]; never None.
    """
    if not isinstance(ngram_size, int) or ngram_size < 1:
        raise ValueError(f"repetition_penalty: ngram_size must be a positive integer, got {ngram_size!r}")
    if not isinstance(max_penalty, (int, float)) or max_penalty > 0:
        raise ValueError(f"repetition_penalty: max_penalty must be <= 0, got {max_penalty!r}")

    def repetition_penalty_reward(completions, **kwargs) -> list[float | None]:
        return [repetition_score(completion_text(c), ngram_size, float(max_penalty)) for c in completions]

    return repetition_penalty_reward
