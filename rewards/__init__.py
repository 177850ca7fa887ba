"""Reward functions for reasoning models, by name. Plain Python: nothing here imports ``pipeline``.

The contract is TRL's: ``fn(completions, **columns) -> list[float | None]``. Completions are strings or chat messages;
dataset columns (and TRL's ``prompts``, ``completion_ids``, ``trainer_state``...) arrive as keyword arguments and
unknown ones are ignored. None means "cannot judge": skipped, not scored zero. The same functions score GRPO,
filter rejection samples in curate, and grade evaluation.

    reward = build_reward({"name": "accuracy", "weight": 1.0, "gold_column": "gold_answer"})
    reward(["<think>6*7</think> \\\\boxed{42}"], gold_answer=["42"])  # [1.0]

Families: format (think_format, tag_count, reasoning_steps), accuracy, countdown, length (cosine_length,
soft_overlong, repetition_penalty), language (language_consistency), preference (helpfulness, harmlessness).
"""

from . import accuracy, countdown, format, language, length, preference  # noqa: F401  (registers the rewards)
from .registry import REGISTRY, build_reward, list_rewards, register, weighted_sum
from .text import completion_text, extract_final_answer, split_response

__all__ = [
    "REGISTRY",
    "build_reward",
    "completion_text",
    "extract_final_answer",
    "list_rewards",
    "register",
    "split_response",
    "weighted_sum",
]
