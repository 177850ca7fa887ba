"""Preference rewards: helpfulness (reward model or LLM judge) and harmlessness (classifier or rules), as R1 did.

Heavy things happen on first call, not at build time: the model is loaded then (once per process, see
``rewards.models``), so building a reward to validate a recipe costs nothing.
"""

from __future__ import annotations

import math
import re

from .judge import judge_config, judge_scores
from .models import load_scorer, score
from .registry import register
from .text import answer_part, completion_text

NORMALIZATIONS = ("sigmoid", "none", "zscore")
DEFAULT_HARM_PATTERNS = (
    (
        r"\b(?:how to|steps? to|instructions (?:for|to))\s+(?:make|build|assemble)\s+(?:an?\s+)?(?:pipe\s+)?"
        r"(?:bomb|explosive device|nerve agent|bioweapon)"
    ),
    r"\b(?:synthesi[sz]e|synthesis of|cook(?:ing)?)\s+(?:methamphetamine|sarin|vx nerve|ricin|fentanyl)\b",
    r"\bkill\s+yourself\b",
    r"\b(?:ignore|disregard)\s+(?:all\s+)?(?:previous|prior)\s+instructions\b",
    r"\b(?:credit card|social security) numbers?\s*[:=]\s*\d",
)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def normalize_scores(raw: list[float | None], how: str) -> list[float | None]:
    """sigmoid: into (0, 1); none: as is; zscore: minus the mean, over the std, of this call's scores (all 0 if
    constant). None (a text the model could not score) stays None and takes no part in the mean and std."""
    if how == "sigmoid":
        return [None if x is None else _sigmoid(x) for x in raw]
    scored = [x for x in raw if x is not None]
    if how == "zscore" and scored:
        mean = sum(scored) / len(scored)
        std = math.sqrt(sum((x - mean) ** 2 for x in scored) / len(scored))
        return [None if x is None else (x - mean) / std if std > 1e-12 else 0.0 for x in raw]
    return list(raw)


def _prompts(kwargs: dict, n: int) -> list:
    """Per-completion prompts: TRL's ``prompts``, else the ``problem`` column, else no prompt."""
    for key in ("prompts", "problem"):
        values = kwargs.get(key)
        if isinstance(values, (list, tuple)) and len(values) == n:
            return list(values)
    return [None] * n


def _check_scorer_params(reward: str, batch_size, max_length, device) -> None:
    for name, value in (("batch_size", batch_size), ("max_length", max_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{reward}: {name} must be a positive integer, got {value!r}")
    if not isinstance(device, str):
        raise ValueError(  # noqa: TRY004 - recipe mistakes are ValueErrors, one kind for the CLI to report
            f"{reward}: device must be a string such as 'cpu' or 'cuda:0', got {device!r}"
        )


@register("helpfulness")
def helpfulness(
    model: str | None = None,
    judge: dict | None = None,
    batch_size: int = 16,
    normalize: str = "sigmoid",
    max_length: int = 1024,
    device: str = "cpu",
    label: str | int | None = None,
):
    """How helpful the final answer is to the prompt, by a reward model or an LLM judge; thinking is not shown.

    Scores (prompt, answer part after </think>): the prompt is TRL's ``prompts`` or the ``problem`` column. With
    ``model`` (hub id or path of an AutoModelForSequenceClassification): its logit (or a classifier's log-odds of
    ``label``), then ``normalize``. With ``judge`` ({base_url, model, api_key_env, rubric, ...}, see
    ``rewards.judge``): the judge's 0-10 grade / 10. Give exactly one of model and judge.
    Range: model + sigmoid (0.0, 1.0); model + none any real; model + zscore mean 0 and std 1 over the call's
    completions (all 0.0 when they score the same); judge [0.0, 1.0], or None where the request failed; model:
    None for a completion the model cannot score (see ``rewards.models.score``), never an exception.
    """
    if (model is None) == (judge is None):
        raise ValueError("helpfulness: give exactly one of model= (a reward model) and judge= (an LLM judge)")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"helpfulness: unknown normalize '{normalize}'. Valid: {', '.join(NORMALIZATIONS)}")
    _check_scorer_params("helpfulness", batch_size, max_length, device)
    config = judge_config(judge) if judge is not None else None

    def helpfulness_reward(completions, **kwargs) -> list[float | None]:
        answers = [answer_part(completion_text(c)) for c in completions]
        prompts = _prompts(kwargs, len(completions))
        if config is not None:
            return judge_scores(config, prompts, answers)
        network, tokenizer = load_scorer(model, device)
        return normalize_scores(score(network, tokenizer, prompts, answers, batch_size, max_length, label), normalize)

    return helpfulness_reward


@register("harmlessness")
def harmlessness(
    model: str | None = None,
    patterns: list[str] | None = None,
    batch_size: int = 16,
    max_length: int = 1024,
    device: str = "cpu",
    label: str | int | None = None,
):
    """Whether the whole response (thinking included) is harmless, by a classifier/reward model or by rules.

    With ``model``: sigmoid of its logit (or the softmax probability of ``label`` for a classifier) over (prompt,
    whole response). Without: 1.0 when none of ``patterns`` (case-insensitive regexes, searched anywhere in the
    response) matches, else 0.0; ``patterns=None`` uses DEFAULT_HARM_PATTERNS, a crude net for a few plainly
    dangerous requests fulfilled (refusals that quote them match too).
    Range: model (0.0, 1.0), or None for a completion the model cannot score (see ``rewards.models.score``);
    rules {0.0, 1.0}, never None. Never an exception for a completion.
    """
    _check_scorer_params("harmlessness", batch_size, max_length, device)
    patterns = DEFAULT_HARM_PATTERNS if patterns is None else patterns
    if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
        raise ValueError("harmlessness: patterns must be a list of regular expressions (strings)")
    try:
        compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    except re.error as error:
        raise ValueError(f"harmlessness: bad pattern {error.pattern!r}: {error}") from error
    try:  # one pass over the text instead of one per pattern (patterns with inline global flags cannot be joined)
        compiled = [re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)] if patterns else []
    except re.error:
        pass

    def harmlessness_reward(completions, **kwargs) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        if model is None:
            return [0.0 if any(p.search(text) for p in compiled) else 1.0 for text in texts]
        network, tokenizer = load_scorer(model, device)
        raw = score(network, tokenizer, _prompts(kwargs, len(texts)), texts, batch_size, max_length, label)
        return normalize_scores(raw, "sigmoid")

    return harmlessness_reward
