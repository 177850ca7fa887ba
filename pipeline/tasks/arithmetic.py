"""`arithmetic`: integer expressions like 12+34*56 over + - *, solved step by step with the usual precedence."""

from __future__ import annotations

from pipeline.tasks.common import Task, check_int, multiply_steps

OPS = "+-*"


def validate(params: dict) -> dict:
    ops = params["ops"]
    if isinstance(ops, str):
        ops = list(ops)
    if not ops or not all(isinstance(op, str) and op in OPS for op in ops):
        raise ValueError(f"task parameter 'ops' must be a non-empty subset of '{OPS}' (e.g. '+-'), got {ops!r}")
    return {
        # canonical order, so that ops='*+' and ops='+*' are the same config (and the same cache fingerprint)
        "ops": "".join(op for op in OPS if op in ops),
        "digits": check_int(params, "digits", 1, 9),
        "operands": check_int(params, "operands", 2, 8),
    }


def space_size(params: dict) -> int:
    numbers = 9 * 10 ** (params["digits"] - 1)  # exactly `digits` digits; 1..9 when digits == 1
    return numbers ** params["operands"] * len(params["ops"]) ** (params["operands"] - 1)


def solve(numbers: list[int], ops: list[str]) -> list[str]:
    """Solution lines: every product first (left to right, long products in partial-product steps), then the sums
    and differences left to right. The last line's value is the expression's value."""
    terms, signs, lines = [numbers[0]], [], []
    for op, number in zip(ops, numbers[1:]):
        if op == "*":
            lines += multiply_steps(terms[-1], number)
            terms[-1] *= number
        else:
            signs.append(op)
            terms.append(number)
    total = terms[0]
    for sign, term in zip(signs, terms[1:]):
        value = total + term if sign == "+" else total - term
        lines.append(f"{total}{sign}{term}={value}")
        total = value
    return lines


def make(rng, params: dict) -> dict:
    low, high = 10 ** (params["digits"] - 1), 10 ** params["digits"] - 1
    numbers = [rng.randint(max(low, 1), high) for _ in range(params["operands"])]
    ops = [rng.choice(params["ops"]) for _ in range(params["operands"] - 1)]
    expression = str(numbers[0]) + "".join(op + str(n) for op, n in zip(ops, numbers[1:]))
    lines = solve(numbers, ops)
    return {
        "problem": f"{expression}=?",
        "gold_answer": lines[-1].rpartition("=")[2],
        "solution": "\n".join(lines),
        "expression": expression,
    }


TASK = Task(
    name="arithmetic",
    help="integer expressions like 12+34*56 over + - * (precedence respected), solved one operation per line",
    params={"ops": OPS, "digits": 2, "operands": 2},
    make=make,
    space_size=space_size,
    validate=validate,
)
