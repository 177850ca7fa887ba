"""`countdown`: reach a target with + - * / using each given number exactly once.

Every problem is solvable by construction: the target is the value of a random expression over the numbers, with
the Countdown rules on every intermediate result (positive integers; division only when exact). The numbers are
shown sorted, so the same numbers in another order are the same problem text and cannot leak across splits.
"""

from __future__ import annotations

import ast
from math import comb

from pipeline.tasks.common import Task, check_int, evaluate

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_ATOM = 3


def validate(params: dict) -> dict:
    checked = {
        "numbers": check_int(params, "numbers", 2, 6),
        "max_number": check_int(params, "max_number", 2, 1000),
        "min_target": check_int(params, "min_target", 1, 10**6),
        "max_target": check_int(params, "max_target", 1, 10**6),
    }
    if checked["min_target"] > checked["max_target"]:
        raise ValueError(f"task parameter 'min_target' ({checked['min_target']}) is above 'max_target' "
                         f"({checked['max_target']}): swap them")
    return checked


def space_size(params: dict) -> int:
    """An upper bound: sorted number tuples times targets (not every pair of them is reachable)."""
    tuples = comb(params["max_number"] + params["numbers"] - 1, params["numbers"])
    return tuples * (params["max_target"] - params["min_target"] + 1)


def _combine(rng, a: tuple, b: tuple) -> tuple:
    """One random legal step a op b (operands may swap): (value, expression, precedence, step line).

    '+' is always legal, so one of the four shuffled operators always passes."""
    va, vb = a[0], b[0]
    for op in rng.sample("+-*/", 4):
        x, y = (a, b) if op in "+*" or va >= vb else (b, a)
        (vx, ex, px), (vy, ey, py) = x, y
        if op == "-" and vx == vy or op == "*" and 1 in (vx, vy) or op == "/" and (vy == 1 or vx % vy):
            continue  # zero is not a legal intermediate; *1 and /1 would let any 1 vanish for free
        value = {"+": vx + vy, "-": vx - vy, "*": vx * vy, "/": vx // vy}[op]
        prec = _PRECEDENCE[op]
        left = f"({ex})" if px < prec else ex
        right = f"({ey})" if py < prec or (py == prec and op in "-/") else ey
        return value, f"{left}{op}{right}", prec, f"{vx}{op}{vy}={value}"
    raise AssertionError("unreachable: '+' is always legal")


def _random_expression(rng, numbers: list[int]) -> tuple[int, str, list[str]]:
    """Fold the numbers pairwise at random: (value, expression, step lines)."""
    pool = [(n, str(n), _ATOM) for n in numbers]
    steps = []
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        value, expression, prec, step = _combine(rng, pool[i], pool[j])
        pool = [item for k, item in enumerate(pool) if k not in (i, j)] + [(value, expression, prec)]
        steps.append(step)
    return pool[0][0], pool[0][1], steps


def make(rng, params: dict) -> dict:
    for _ in range(10_000):
        numbers = [rng.randint(1, params["max_number"]) for _ in range(params["numbers"])]
        built = _random_expression(rng, numbers)
        if params["min_target"] <= built[0] <= params["max_target"]:
            break
    else:
        raise ValueError(f"countdown: no target in [{params['min_target']}, {params['max_target']}] came out of "
                         f"10000 random expressions over numbers up to {params['max_number']}: widen the range")
    target, expression, steps = built
    if steps[-1] != f"{expression}={target}":
        steps.append(f"{expression}={target}")  # the last line states the answer as one expression
    shown = sorted(numbers)
    return {
        "problem": f"Make {target} from {' '.join(map(str, shown))} (each once; + - * /)",
        "gold_answer": expression,
        "solution": "\n".join(steps),
        "numbers": shown,
        "target": target,
    }


def check_countdown(expression: str, numbers: list[int], target: int) -> bool:
    """True when the expression uses exactly the given numbers (each once) and equals the target."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        value = evaluate(expression)
    except (ValueError, SyntaxError):
        return False
    used = sorted(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant))
    return used == sorted(numbers) and value == target


TASK = Task(
    name="countdown",
    help="reach a target with + - * / using each given number once; the gold answer is one valid expression",
    params={"numbers": 3, "max_number": 20, "min_target": 10, "max_target": 100},
    make=make,
    space_size=space_size,
    validate=validate,
)
