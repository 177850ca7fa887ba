"""Procedural tasks: deterministic, disjoint, size-independent splits whose solutions are arithmetically right."""

import pytest

from pipeline.tasks import (
    TASKS,
    check_countdown,
    evaluate,
    generate_splits,
    get_task,
    list_tasks,
    solution_lines_ok,
    to_trace_row,
)
from pipeline.tasks.arithmetic import solve
from pipeline.tasks.common import multiply_steps
from pipeline.tasks.splits import owner

SIZES = {"train": 300, "test": 60}
HARD = {"arithmetic": {"operands": 3, "digits": 2}, "multiplication": {"digits_a": 3, "digits_b": 3},
        "countdown": {"numbers": 4}, "column_sum": {"operands": 4, "digits": 3}}


@pytest.fixture(scope="module", params=sorted(TASKS))
def task_splits(request):
    name = request.param
    return name, generate_splits(name, SIZES, seed=0, **HARD[name])


def test_registry_lists_every_task_with_help_and_defaults():
    listed = {name: (help_, params) for name, help_, params in list_tasks()}
    assert set(listed) == {"arithmetic", "column_sum", "multiplication", "countdown"}
    assert all(help_ and "\n" not in help_ for help_, _ in listed.values())
    assert listed["arithmetic"][1] == {"ops": "+-*", "digits": 2, "operands": 2}
    assert listed["multiplication"][1]["digits_a"] == 2


def test_unknown_task_and_parameter_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"Unknown task 'sudoku'. Available: arithmetic, column_sum, countdown, multiplication"):
        get_task("sudoku")
    with pytest.raises(ValueError, match=r"Unknown parameter 'digit'.*Did you mean 'digits'"):
        generate_splits("arithmetic", {"train": 5}, seed=0, digit=3)
    with pytest.raises(ValueError, match=r"'ops' must be a non-empty subset"):
        generate_splits("arithmetic", {"train": 5}, seed=0, ops="+/")


def test_rows_have_the_columns_and_sizes(task_splits):
    name, splits = task_splits
    assert {split: len(rows) for split, rows in splits.items()} == SIZES
    for row in splits["train"] + splits["test"]:
        assert row["task"] == name and row["id"].startswith(f"{name}-")
        assert row["problem"] and row["gold_answer"] and row["solution"]
        assert "<think>" not in row["solution"]


def test_every_solution_step_is_right_and_ends_at_the_gold_answer(task_splits):
    name, splits = task_splits
    for row in splits["train"] + splits["test"]:
        assert solution_lines_ok(row["solution"]), row
        last_expr, _, last_value = row["solution"].splitlines()[-1].rpartition("=")
        if name == "countdown":
            assert last_expr == row["gold_answer"] and int(last_value) == row["target"]
        else:
            assert last_value == row["gold_answer"]
            assert evaluate(row["problem"].removesuffix("=?")) == int(row["gold_answer"])


def test_countdown_gold_uses_exactly_the_numbers_and_hits_the_target():
    splits = generate_splits("countdown", SIZES, seed=0, **HARD["countdown"])
    for row in splits["train"] + splits["test"]:
        assert len(row["numbers"]) == 4 and row["numbers"] == sorted(row["numbers"])
        assert 10 <= row["target"] <= 100
        assert check_countdown(row["gold_answer"], row["numbers"], row["target"]), row
    row = splits["test"][0]
    assert not check_countdown(row["gold_answer"] + "+1", row["numbers"], row["target"])
    assert not check_countdown("+".join(map(str, row["numbers"][:-1])), row["numbers"], row["target"])


def test_splits_are_disjoint_and_deduplicated(task_splits):
    _, splits = task_splits
    train, test = ({row["problem"] for row in splits[s]} for s in ("train", "test"))
    assert len(train) == SIZES["train"] and len(test) == SIZES["test"]
    assert not train & test


def test_same_seed_same_rows_other_seed_other_rows():
    first = generate_splits("arithmetic", SIZES, seed=1, operands=3)
    assert generate_splits("arithmetic", SIZES, seed=1, operands=3) == first
    other = generate_splits("arithmetic", SIZES, seed=2, operands=3)
    assert {r["problem"] for r in other["test"]} != {r["problem"] for r in first["test"]}


def test_a_split_does_not_change_when_other_splits_grow():
    small = generate_splits("multiplication", {"train": 100, "test": 50}, seed=3)
    large = generate_splits("multiplication", {"train": 2000, "test": 50}, seed=3)
    assert large["test"] == small["test"]
    assert large["train"][:100] == small["train"]  # growing train only appends
    more_test = generate_splits("multiplication", {"train": 100, "test": 300}, seed=3)
    assert more_test["train"] == small["train"] and more_test["test"][:50] == small["test"]


def test_adding_a_split_moves_problems_only_into_it():
    weights = {"train": 9.0, "test": 1.0}
    texts = [f"{a}*{b}=?" for a in range(10, 60) for b in range(10, 30)]
    before = {text: owner(text, 0, weights) for text in texts}
    after = {text: owner(text, 0, {**weights, "validation": 1.0}) for text in texts}
    assert all(after[t] in (before[t], "validation") for t in texts)
    assert 0.75 < sum(before[t] == "train" for t in texts) / len(texts) < 0.95  # ~90% train


def test_too_large_a_split_is_refused_with_the_space_size():
    with pytest.raises(ValueError, match=r"split 'test' asks for 20 problems.*81 distinct problems"):
        generate_splits("multiplication", {"train": 10, "test": 20}, seed=0, digits_a=1, digits_b=1)
    with pytest.raises(ValueError, match=r"shares names splits \['dev'\]"):
        generate_splits("multiplication", {"train": 10}, seed=0, shares={"dev": 1})
    # a larger share makes room: test may now own up to half of the 81 problems
    splits = generate_splits("multiplication", {"train": 20, "test": 20}, seed=0, digits_a=1, digits_b=1,
                             shares={"train": 1, "test": 1})
    assert len(splits["test"]) == 20


def test_multiplication_solution_formats():
    assert multiply_steps(47, 86) == ["47*6=282", "47*80=3760", "282+3760=4042"]
    assert multiply_steps(47, 80) == ["47*80=3760"]
    assert multiply_steps(47, 6) == ["47*6=282"]
    assert multiply_steps(47, 86, "digits") == [
        "7*6=42", "4*6+4=28", "47*6=282", "7*8=56", "4*8+5=37", "47*80=3760",
        "2+0=2", "8+6=14", "2+7+1=10", "0+3+1=4", "282+3760=4042"]
    digits = generate_splits("multiplication", {"train": 50}, seed=0, digits_a=3, digits_b=2, detail="digits")
    assert all(solution_lines_ok(r["solution"]) and r["solution"].endswith("=" + r["gold_answer"])
               for r in digits["train"])


def test_arithmetic_respects_precedence_and_ops():
    splits = generate_splits("arithmetic", {"train": 200}, seed=0, ops="+-", digits=3, operands=4)
    assert all("*" not in row["problem"] and len(row["problem"]) == 4 * 3 + 3 + 2 for row in splits["train"])
    assert solve([12, 34, 56], ["+", "*"]) == ["34*6=204", "34*50=1700", "204+1700=1904", "12+1904=1916"]
    assert solve([50, 3, 7], ["-", "*"]) == ["3*7=21", "50-21=29"]
    assert solve([5, 9, 2], ["-", "+"]) == ["5-9=-4", "-4+2=-2"]  # left to right, negatives allowed


def test_to_trace_row_renders_the_solution_as_thinking():
    row = generate_splits("multiplication", {"test": 1}, seed=0)["test"][0]
    trace = to_trace_row(row)
    assert trace["response"] == f"<think>\n{row['solution']}\n</think>\n{row['gold_answer']}"
    assert trace["gold_answer"] == row["gold_answer"] and trace["verified"] is True
    assert trace["source"] == "multiplication"


def test_column_sum_works_column_by_column_with_carries():
    from pipeline.tasks.column_sum import solve

    assert solve([16, 34, 64, 50]) == ["6+4+4+0=14", "1+3+6+5+1=16", "160+4=164"]
    assert solve([449, 686]) == ["9+6=15", "4+8+1=13", "4+6+1=11", "1100+35=1135"]
    assert solve([5, 3]) == ["5+3=8"]
