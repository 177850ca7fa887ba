"""What every procedural task shares: the `Task` record, a safe evaluator, and the step writers of the solutions.

Solutions are written for a character-level student of a few million parameters, so each one is a list of lines
``expr=value`` in which every line takes one small step whose digits can be computed from a few nearby characters
(a product of a number by one digit, one addition). `solution_lines_ok` checks every line of such a solution.
"""

from __future__ import annotations

import ast
import hashlib
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class Task:
    """A problem generator with verifiable answers.

    `make(rng, params)` draws one problem: a dict with ``problem``, ``gold_answer``, ``solution`` and the task's own
    columns. `space_size(params)` counts the distinct problem texts the params allow (an upper bound where an exact
    count is out of reach), which bounds how many problems a split can hold. `validate(params)` returns the params
    normalised, or raises ValueError naming the parameter and the fix.
    """

    name: str
    help: str
    params: dict
    make: Callable
    space_size: Callable
    validate: Callable = field(default=lambda params: params)


def problem_id(task: str, problem: str) -> str:
    """Stable id of a problem: the task name and a hash of its text, the same for every seed and split."""
    return f"{task}-{hashlib.sha1(problem.encode()).hexdigest()[:12]}"


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expr: str) -> Fraction:
    """Exact value of an arithmetic expression of integers, + - * / and parentheses; ValueError for anything else."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            right = walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError(f"division by zero in {expr!r}")
            return _BINARY[type(node.op)](walk(node.left), right)
        raise ValueError(f"not a plain arithmetic expression: {expr!r}")

    try:
        return walk(ast.parse(expr.strip(), mode="eval"))
    except SyntaxError as error:
        raise ValueError(f"not a plain arithmetic expression: {expr!r}") from error


def solution_lines_ok(solution: str) -> bool:
    """True when every line of a solution reads ``expr=value`` and the expression really equals the value."""
    for line in solution.splitlines():
        expr, sep, value = line.rpartition("=")
        if not sep:
            return False
        try:
            if evaluate(expr) != evaluate(value):
                return False
        except ValueError:
            return False
    return True


def digits_of(n: int) -> list[int]:
    """Decimal digits of a non-negative integer, least significant first."""
    return [int(c) for c in reversed(str(n))]


def column_add_steps(x: int, y: int) -> list[str]:
    """x+y written column by column from the right, carry included, then the whole sum.

    "282+3760" -> 2+0=2, 8+6=14, 2+7+1=10, 0+3+1=4, 282+3760=4042: each column needs only two digits and the carry
    of the line above, and the result's digits are the last digits of the column lines read bottom-up.
    """
    dx, dy = digits_of(x), digits_of(y)
    width = max(len(dx), len(dy))
    dx, dy = dx + [0] * (width - len(dx)), dy + [0] * (width - len(dy))
    lines, carry = [], 0
    for a, b in zip(dx, dy):
        total = a + b + carry
        lines.append(f"{a}+{b}" + (f"+{carry}" if carry else "") + f"={total}")
        carry = total // 10
    return lines + [f"{x}+{y}={x + y}"]


def digit_product_steps(a: int, digit: int, shift: int) -> list[str]:
    """a*(digit*10^shift) written digit by digit of a from the right, with the carry, then the partial product.

    47*80 -> 7*8=56, 4*8+5=37, 47*80=3760: each line is one times-table fact plus a carry from the line above.
    """
    lines, carry = [], 0
    for d in digits_of(a) if a >= 10 else []:  # a one-digit a is the times-table fact itself
        total = d * digit + carry
        lines.append(f"{d}*{digit}" + (f"+{carry}" if carry else "") + f"={total}")
        carry = total // 10
    return lines + [f"{a}*{digit * 10 ** shift}={a * digit * 10 ** shift}"]


def multiply_steps(a: int, b: int, detail: str = "partial") -> list[str]:
    """The long multiplication a*b as solution lines; the last line's value is a*b.

    ``partial``: one partial product per non-zero digit of b (47*6=282, 47*80=3760), then a running sum of them.
    ``digits``: the same plan with every partial product and every sum written column by column (carries shown).
    A product with a one-digit factor is a single line in ``partial`` style: it is one row of the times table.
    """
    if detail not in ("partial", "digits"):
        raise ValueError(f"detail must be 'partial' or 'digits', got {detail!r}")
    if detail == "partial" and min(a, b) < 10:
        return [f"{a}*{b}={a * b}"]
    lines, partials = [], []
    for shift, digit in enumerate(digits_of(b)):
        if digit == 0:
            continue
        if detail == "digits":
            lines += digit_product_steps(a, digit, shift)
        else:
            lines.append(f"{a}*{digit * 10 ** shift}={a * digit * 10 ** shift}")
        partials.append(a * digit * 10 ** shift)
    if not partials:  # b == 0
        return [f"{a}*{b}=0"]
    total = partials[0]
    for partial in partials[1:]:
        lines += column_add_steps(total, partial) if detail == "digits" else [f"{total}+{partial}={total + partial}"]
        total += partial
    return lines  # with one non-zero digit in b, its partial product line is already a*b=...


def check_int(params: dict, name: str, low: int, high: int) -> int:
    """params[name] as an int in [low, high], or a ValueError naming the parameter and its range."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"task parameter '{name}' must be an integer in [{low}, {high}], got {value!r}")
    return value
