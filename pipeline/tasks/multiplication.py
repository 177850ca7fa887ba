"""`multiplication`: long multiplication a*b, solved with one partial product per digit of b and a running sum.

A model of a few million parameters cannot map 47*86 to 4042 in one go, but it can write 47*6=282 (one row of the
times table with carries), 47*80=3760, and 282+3760=4042. ``detail='digits'`` spells out those carries as well.
"""

from __future__ import annotations

from pipeline.tasks.common import Task, check_int, multiply_steps


def validate(params: dict) -> dict:
    if params["detail"] not in ("partial", "digits"):
        raise ValueError(f"task parameter 'detail' must be 'partial' or 'digits', got {params['detail']!r}")
    return {
        "digits_a": check_int(params, "digits_a", 1, 9),
        "digits_b": check_int(params, "digits_b", 1, 9),
        "detail": params["detail"],
    }


def space_size(params: dict) -> int:
    return 81 * 10 ** (params["digits_a"] - 1) * 10 ** (params["digits_b"] - 1)


def make(rng, params: dict) -> dict:
    a = rng.randint(10 ** (params["digits_a"] - 1), 10 ** params["digits_a"] - 1)
    b = rng.randint(10 ** (params["digits_b"] - 1), 10 ** params["digits_b"] - 1)
    lines = multiply_steps(a, b, params["detail"])
    return {"problem": f"{a}*{b}=?", "gold_answer": str(a * b), "solution": "\n".join(lines), "a": a, "b": b}


TASK = Task(
    name="multiplication",
    help="long multiplication a*b: partial products per digit of b, then their sum (detail='digits' shows carries)",
    params={"digits_a": 2, "digits_b": 2, "detail": "partial"},
    make=make,
    space_size=space_size,
    validate=validate,
)
