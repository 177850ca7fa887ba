"""The R1 think tags and the split of a response at them: the one rule the rewards, the data adapters, curate and
sft all use. A leaf module (nothing else of rewards/ is imported), so a stage that only splits responses does not
depend on the reward functions' code."""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def split_response(text: str) -> tuple[str | None, str]:
    """(thinking, answer) of a response, both stripped; the split is at the first ``</think>``.

    thinking is the text between the first ``<think>`` and the first ``</think>``, or all the text before
    ``</think>`` when there is no ``<think>`` (the prompt prefilled it); answer is everything after that first
    ``</think>`` (so a second think block ends up in the answer, where the format reward rejects it). With no
    ``</think>`` at all the result is ``(None, whole text)``.
    """
    if THINK_CLOSE not in text:
        return None, text.strip()
    head, _, tail = text.partition(THINK_CLOSE)
    thinking = head.split(THINK_OPEN, 1)[1] if THINK_OPEN in head else head
    return thinking.strip(), tail.strip()
