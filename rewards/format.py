"""Structure rewards: the R1 think/answer layout, open-r1's tag count, and open-r1's reasoning-step count."""

from __future__ import annotations

import re

from .registry import register
from .text import THINK_CLOSE, THINK_OPEN, completion_text

_PREFILL_RE = re.compile(r"<think>\s*$")
_STRICT_RE = re.compile(r"<think>\n(.*?)\n</think>\n<answer>\n(.*?)\n</answer>\s*", re.DOTALL)
_STEP_RE = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", re.MULTILINE)


def _prefill(prompt, prefilled: bool | None) -> str:
    """The think tag the prompt already opened, to put back in front of the completion ("" when none).

    ``prefilled=None`` looks at a string prompt: one that ends with ``<think>`` (R1-distill chat templates do this)
    opened the block. A chat-message prompt does not show the template's generation prompt, so set
    ``prefilled=True`` for such models.
    """
    if prefilled is True:
        return THINK_OPEN + "\n"
    if prefilled is None and isinstance(prompt, str):
        match = _PREFILL_RE.search(prompt[-200:])
        return match.group() if match else ""
    return ""


def _texts(completions, prompts, prefilled: bool | None) -> list[str]:
    prompts = prompts if isinstance(prompts, (list, tuple)) and len(prompts) == len(completions) else None
    return [
        _prefill(prompts[i] if prompts else None, prefilled) + completion_text(c) for i, c in enumerate(completions)
    ]


def is_r1_format(text: str) -> bool:
    """``<think>`` + non-blank thinking + ``</think>`` + non-blank answer; only whitespace before ``<think>``;
    exactly one think block, so a think tag in the answer part fails. The answer's ``<answer>``/``</answer>`` tags
    are not an answer: ``<answer></answer>`` (or ``<answer> </answer>``) alone is blank."""
    if text.count(THINK_OPEN) != 1 or text.count(THINK_CLOSE) != 1:
        return False
    before, _, rest = text.partition(THINK_OPEN)
    thinking, _, answer = rest.partition(THINK_CLOSE)
    answer = answer.replace("<answer>", "").replace("</answer>", "")
    return not before.strip() and bool(thinking.strip()) and bool(answer.strip())


def is_strict_format(text: str) -> bool:
    """open-r1's layout ``<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>`` (trailing whitespace allowed),
    each tag exactly once, thinking and answer not blank."""
    if any(text.count(tag) != 1 for tag in (THINK_OPEN, THINK_CLOSE, "<answer>", "</answer>")):
        return False
    match = _STRICT_RE.fullmatch(text)
    return bool(match and match.group(1).strip() and match.group(2).strip())


@register("think_format")
def think_format(strict: bool = False, prefilled: bool | None = None):
    """R1 layout: 1.0 for <think>reasoning</think> then a non-empty answer, else 0.0 (strict: open-r1 tags).

    Scores the whole completion. Non-strict: see ``is_r1_format``; strict: see ``is_strict_format``. When the
    prompt prefilled ``<think>`` (see ``_prefill``; ``prefilled=True`` forces it) the tag is put back in front of
    the completion first. Range: {0.0, 1.0}; never None.
    """
    check = is_strict_format if strict else is_r1_format

    def think_format_reward(completions, prompts=None, **kwargs) -> list[float | None]:
        return [1.0 if check(text) else 0.0 for text in _texts(completions, prompts, prefilled)]

    return think_format_reward


@register("tag_count")
def tag_count(prefilled: bool | None = None):
    """open-r1's partial format credit: 0.25 for each of <think>\\n, \\n</think>\\n, \\n<answer>\\n, \\n</answer>.

    Each of the four strings earns 0.25 when it occurs exactly once in the completion (with the prefilled think tag
    put back, as in ``think_format``). Range: [0.0, 1.0] in steps of 0.25; never None.
    """
    tags = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")

    def tag_count_reward(completions, prompts=None, **kwargs) -> list[float | None]:
        texts = _texts(completions, prompts, prefilled)
        return [sum((0.25 for tag in tags if text.count(tag) == 1), 0.0) for text in texts]

    return tag_count_reward


@register("reasoning_steps")
def reasoning_steps(steps: int = 3):
    """open-r1's step count: min(1, count / steps) over "Step 1:", numbered lines, bullets, "First,", "Next,"...

    Counts, over the whole completion (thinking included), the matches of ``Step N:``, a line starting ``N.``, a
    line starting ``-`` or ``*``, and ``First,`` ``Second,`` ``Next,`` ``Finally,``. Range: [0.0, 1.0]; never None.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"reasoning_steps: steps must be a positive integer, got {steps!r}")

    def reasoning_steps_reward(completions, **kwargs) -> list[float | None]:
        return [min(1.0, len(_STEP_RE.findall(completion_text(c))) / steps) for c in completions]

    return reasoning_steps_reward
