"""`column_sum`: the sum of several numbers, solved the school way, one column at a time with its carry.

    16+34+64+50=?   ->   6+4+4+0=14
                         1+3+6+5+1=16
                         160+4=164

Chain of thought matters here for a small model: each line adds a handful of single digits read from fixed places
(the column's digits and the carry, which is the previous total without its last digit), while answering
directly means carrying through every column at once. The last line puts the top column's total in front of the
last digits of the lower columns.
"""

from __future__ import annotations

from pipeline.tasks.common import Task, check_int, digits_of


def validate(params: dict) -> dict:
    return {"digits": check_int(params, "digits", 1, 6), "operands": check_int(params, "operands", 2, 8)}


def space_size(params: dict) -> int:
    return (9 * 10 ** (params["digits"] - 1)) ** params["operands"]


def solve(numbers: list[int]) -> list[str]:
    columns = max(len(str(n)) for n in numbers)
    lines, carry, low_digits = [], 0, []
    for position in range(columns):
        column = [digits_of(n)[position] if position < len(str(n)) else 0 for n in numbers]
        total = sum(column) + carry
        lines.append("+".join(map(str, column)) + (f"+{carry}" if carry else "") + f"={total}")
        if position < columns - 1:
            low_digits.insert(0, str(total % 10))
            carry = total // 10
    if low_digits:
        lower = "".join(low_digits)
        lines.append(f"{total}{'0' * len(lower)}+{lower.lstrip('0') or '0'}={sum(numbers)}")
    return lines


def make(rng, params: dict) -> dict:
    low, high = 10 ** (params["digits"] - 1), 10 ** params["digits"] - 1
    numbers = [rng.randint(max(low, 1), high) for _ in range(params["operands"])]
    expression = "+".join(map(str, numbers))
    return {"problem": f"{expression}=?", "gold_answer": str(sum(numbers)), "solution": "\n".join(solve(numbers)),
            "expression": expression}


TASK = Task(
    name="column_sum",
    help="sums of several numbers like 16+34+64+50, solved column by column with carries (CoT matters)",
    params={"digits": 2, "operands": 4},
    make=make,
    space_size=space_size,
    validate=validate,
)
