"""Answer correctness: the final answer after ``</think>`` checked against the gold answer with math_verify."""

from __future__ import annotations

from .registry import register
from .text import answer_part, column, completion_text, extract_final_answer
from .verify import answers_equivalent, gold_text


def correctness(text: str, gold, timeout_s: float = 2.0) -> float | None:
    """1.0 when the final answer of ``text`` equals ``gold``, 0.0 when not, None when the gold cannot be judged.

    The final answer is looked for only after ``</think>`` (``answer_part``; a response that opens ``<think>`` and
    never closes it has no answer, one without think tags is all answer): ``\\boxed{}`` first, then
    ``<answer>`` tags, then the last number (``extract_final_answer``). No answer scores 0, and there is none when
    the response hedges (two different boxes or tags, "\\boxed{7} or 8", "7 or \\boxed{8}", "3, 4, 5") or was cut
    off inside its final box or tag (``... \\boxed{8000``). Gold may be a GSM8K rationale (the text after ``####``
    is used). None when the gold is missing or does not parse.

    Numbers are compared without their currency sign, percent sign, degree mark or unit words (``\\$13``,
    ``18 dollars``, ``18\\text{ dollars}``, ``25\\%``, ``90^\\circ``; see ``rewards.verify.strip_units``), so a
    right number in the wrong unit also scores 1. An inequality is not an interval: ``x > 2`` scores 0 against
    ``(2,\\infty)`` while ``x \\in (2,\\infty)`` and ``(2, \\infty)`` score 1. math_verify does not equate a
    relation with a set, and converting one would also pay ``-2 < x < 1`` against the point ``(-2,1)``, which
    reads the same as an open interval; problems with interval answers ask for the set.
    """
    gold = gold_text(gold)
    if gold is None:
        return None
    answer = answer_part(text)
    final = extract_final_answer(answer)
    verdict = answers_equivalent(gold, final or "", timeout_s)
    if verdict is None:
        return None
    return 1.0 if verdict and final else 0.0


@register("accuracy")
def accuracy(gold_column: str = "gold_answer", timeout_s: float = 2.0):
    """1.0 when the final answer (after </think>) is equivalent to the gold answer by math_verify, else 0.0.

    See ``correctness`` for what counts as the final answer and when it scores 0. Plain numbers are compared without
    sympy; anything else goes to math_verify in a worker process, ``timeout_s`` seconds per check at most (plus a
    1 s grace when the worker has to be killed; a timeout scores 0.0; see ``rewards.verify``).
    Range: {0.0, 1.0}, or None when the gold answer is missing or unparseable.
    """
    if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise ValueError(f"accuracy: timeout_s must be a positive number of seconds, got {timeout_s!r}")

    def accuracy_reward(completions, **kwargs) -> list[float | None]:
        golds = column(kwargs, gold_column, "accuracy", len(completions))
        return [correctness(completion_text(c), g, float(timeout_s)) for c, g in zip(completions, golds)]

    return accuracy_reward
