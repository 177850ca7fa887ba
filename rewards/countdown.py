"""Countdown: an arithmetic expression over the given numbers that reaches the target, checked without eval."""

from __future__ import annotations

import ast
import re
import warnings
from collections import Counter
from fractions import Fraction

from .registry import register
from .text import answer_part, boxed_contents, column, completion_text, last_answer_tag

_EXPRESSION_TAIL_RE = re.compile(r"[\d\s+\-*/().=]+$")
_REPLACEMENTS = (
    ("\\left", ""), ("\\right", ""), ("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("·", "*"),
    ("÷", "/"), ("−", "-"), ("–", "-"), ("$", ""), ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""),
)
_OPERATORS = {ast.Add: Fraction.__add__, ast.Sub: Fraction.__sub__, ast.Mult: Fraction.__mul__,
              ast.Div: Fraction.__truediv__}
MAX_EXPRESSION_CHARS = 500
_MAX_LITERAL = 10**12


def countdown_expression(answer: str) -> str:
    """The expression a countdown answer proposes: the last boxed content, else the last ``<answer>`` content, else
    the last non-blank line. LaTeX and unicode operators become ``+ - * /``, ``$`` is dropped, and only the trailing
    run of digits, operators, parentheses and ``=`` is kept ("Answer: (25 - 1) * 1" -> "(25 - 1) * 1")."""
    boxes = boxed_contents(answer)
    tag = last_answer_tag(answer) if not boxes else None
    lines = [line for line in answer.splitlines() if line.strip()] if not boxes and tag is None else []
    text = boxes[-1] if boxes else tag if tag is not None else lines[-1] if lines else ""
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = text.strip().rstrip(".")
    match = _EXPRESSION_TAIL_RE.search(text[-MAX_EXPRESSION_CHARS - 1 :])
    return match.group().strip().lstrip("=").strip() if match else ""


def evaluate_expression(expression: str) -> tuple[Fraction, list[int]] | None:
    """(exact value, integer literals used) of an expression of non-negative integers, + - * / and parentheses.

    Parsed with ``ast`` and walked by hand: no ``eval``, no names, calls, powers or unary signs. None when the text is
    not such an expression, divides by zero, is longer than 500 characters, or has a literal above 10**12.
    """
    if not expression or len(expression) > MAX_EXPRESSION_CHARS:
        return None
    try:
        with warnings.catch_warnings():  # "2(3)" parses as a call and may warn; we reject it below anyway
            warnings.simplefilter("ignore")
            tree = ast.parse(expression, mode="eval")
        literals: list[int] = []
        return _walk(tree.body, literals), literals
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, RecursionError, MemoryError, _NotAllowed):
        return None


class _NotAllowed(Exception):
    pass


def _walk(node: ast.AST, literals: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value <= _MAX_LITERAL:
        literals.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _walk(node.left, literals)
        right = _walk(node.right, literals)
        return _OPERATORS[type(node.op)](left, right)
    raise _NotAllowed(type(node).__name__)


def countdown_score(text: str, numbers, target) -> float | None:
    """1.0 when the answer part's expression uses exactly ``numbers`` (each once, as a multiset) and equals ``target``.

    ``expr = value`` is accepted when ``value`` is a number equal to the target (the left side is then checked).
    Anything the model wrote that is not such an expression scores 0.0. None when ``numbers``/``target`` are not
    a list of integers and a number.
    """
    try:
        wanted = Counter(int(n) for n in numbers)
        goal = Fraction(str(target)) if not isinstance(target, float) else Fraction(target)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):  # inf / nan targets: cannot judge
        return None
    expression = countdown_expression(answer_part(text))
    if expression.count("=") > 1:
        return 0.0
    if "=" in expression:
        expression, claimed = (side.strip() for side in expression.split("="))
        try:
            claimed_value = Fraction(claimed) if len(claimed) < 40 else None
        except (ValueError, ZeroDivisionError):
            claimed_value = None
        if claimed_value != goal:
            return 0.0
    result = evaluate_expression(expression)
    if result is None:
        return 0.0
    value, used = result
    return 1.0 if Counter(used) == wanted and abs(value - goal) < Fraction(1, 10**6) else 0.0


@register("countdown")
def countdown(numbers_column: str = "numbers", target_column: str = "target"):
    """1.0 when the final answer is an expression using exactly the given numbers once each that equals the target.

    Reads the answer part (after </think>): last \\boxed{}, else last <answer>, else last line; see
    ``countdown_score``. Range: {0.0, 1.0}, or None when the row's numbers/target are malformed.
    """

    def countdown_reward(completions, **kwargs) -> list[float | None]:
        numbers = column(kwargs, numbers_column, "countdown", len(completions))
        targets = column(kwargs, target_column, "countdown", len(completions))
        return [countdown_score(completion_text(c), n, t) for c, n, t in zip(completions, numbers, targets)]

    return countdown_reward
