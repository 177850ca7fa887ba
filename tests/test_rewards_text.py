"""rewards.text: completion text, the think/answer split, boxed contents and final-answer extraction."""

import pytest

from rewards import completion_text, extract_final_answer, split_response
from rewards.text import (
    answer_part,
    answer_tags,
    boxed_contents,
    final_box_unclosed,
    last_answer_tag,
    remove_spans,
)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "hi"}], "hi"),
        ({"role": "assistant", "content": "hi"}, "hi"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "ab"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "a"),
        ([{"role": "assistant", "content": "42", "reasoning_content": "think"}], "<think>\nthink\n</think>\n42"),
        ([{"role": "assistant", "content": None}], ""),
        (None, ""),
        ([], ""),
        (17, "17"),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think>b", ("a", "b")),
        ("<think>\n a \n</think>\n b \n", ("a", "b")),
        ("prefilled reasoning</think>answer", ("prefilled reasoning", "answer")),
        ("no tags at all", (None, "no tags at all")),
        ("<think>never closed", (None, "<think>never closed")),
        ("<think>a</think>b<think>c</think>d", ("a", "b<think>c</think>d")),
        ("pre <think>a</think>b", ("a", "b")),
        ("", (None, "")),
        ("</think>", ("", "")),
    ],
)
def test_split_response(text, expected):
    assert split_response(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>x</think> y", "y"),
        ("<think>x = 42, never closed", ""),  # an unfinished thought has not answered
        ("no think at all 42", "no think at all 42"),
    ],
)
def test_answer_part(text, expected):
    assert answer_part(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{42}", ["42"]),
        ("\\boxed{\\frac{1}{2}} and \\boxed{ 3 }", ["\\frac{1}{2}", "3"]),
        ("\\boxed{\\{1, 2\\}}", ["\\{1, 2\\}"]),  # escaped braces are not grouping braces
        ("\\boxed{\\boxed{4}}", ["\\boxed{4}"]),  # outermost only
        ("\\boxed{4", []),
        ("}}}\\boxed{5}{{{", ["5"]),
        ("\\fbox{7}", ["7"]),
        ("\\boxed {8}", ["8"]),
        ("{\\boxed{9}}", ["9"]),
        ("\\boxed{}", [""]),
        ("\\boxed{ \\boxed{4} and more", ["4"]),  # the closed box inside an unclosed one
        ("\\boxed{a}\\boxed{\\fbox{b}}c}", ["a", "\\fbox{b}"]),
    ],
)
def test_boxed_contents(text, expected):
    assert boxed_contents(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("\\boxed{4", True), ("\\boxed{4}", False), ("\\boxed{4} \\boxed{80", True), ("\\boxed{ \\boxed{4} and", False),
     ("\\boxed{\\frac{1}{2", True), ("no box {", False), ("\\boxed{\\{1, 2\\}", True), ("", False)],
)
def test_final_box_unclosed(text, expected):
    assert final_box_unclosed(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{42}.", "42"),
        ("\\boxed{1} then \\boxed{2}", None),  # two different answers are none
        ("\\boxed{2} then \\boxed{ 2 }", "2"),
        ("\\boxed{\\frac{a}{\\sqrt{b}}}", "\\frac{a}{\\sqrt{b}}"),
        ("\\boxed{}", None),
        ("<answer> 17 </answer>", "17"),
        ("<answer>1</answer> <answer>2</answer>", None),
        ("<answer>1</answer> \\boxed{3}", None),
        ("<answer>3</answer> \\boxed{3}", "3"),
        ("<answer>The answer is 3.</answer> \\boxed{3}", "3"),  # prose in the tag: its last number is its answer
        ("<answer>\\boxed{3}</answer>", "3"),
        ("<answer>unclosed 5", None),  # cut off inside the answer
        ("<answer>4</answer> then <answer>unclosed 5", None),
        ("the total is \\boxed{8000", None),  # cut off inside the final box: not the last number
        ("\\boxed{7} and then \\boxed{8000", None),
        ("\\boxed{ \\boxed{4} and more", "4"),  # an unclosed box around a closed one is not a cut-off answer
        ("\\boxed{7} or 8", None),
        ("$\\boxed{7}$, or maybe 8.", None),
        ("\\boxed{7} (or perhaps 8)", None),
        ("either 7 or \\boxed{8}", None),
        ("\\boxed{7}. Or equivalently, 7.0", "7"),  # the same answer again is no hedge
        ("\\boxed{7} apples\n\nAsk if you want more, or 2 more examples", "7"),  # another paragraph
        ("\\boxed{7}, which is more than 3 or 4 cats", None),  # conservative: any other number after a hedge word
        ("\\boxed{\\frac{1}{2}} (or 0.5)", "\\frac{1}{2}"),  # the same number restated is no hedge
        ("\\boxed{25\\%} (or 0.25)", "25\\%"),
        ("\\boxed{\\frac{1}{3}} (or approximately 0.333)", "\\frac{1}{3}"),  # an approximation is no hedge
        ("\\boxed{\\frac{1}{3}} or 0.3", None),
        ("3 or maybe 4", None),
        ("The final answer is $\\left( 3, \\frac{\\pi}{2} \\right)$.", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("So the answer is: \\(x^2 + 1\\)", "x^2 + 1"),
        ("The answer is $\\text{(C)}$, or maybe $\\text{(D)}$.", None),
        ("The answer is $12$ apples. Then 3 more come.", "3"),  # a number after the span: the last number
        ("The answer is $\\text{even}$ or \\text{odd}", None),
        ("The answer is 42.", "42"),
        ("It costs 1,234 dollars", "1234"),
        ("x = -7", "-7"),
        ("5-3", "3"),  # a binary minus is not a sign
        ("it is 14/3", "14/3"),
        ("it is $\\frac{14}{3}$", "\\frac{14}{3}"),
        ("pi is 3.14", "3.14"),
        ("3, 4, 5", None),
        ("either 3 or 4", None),
        ("x = 2 or x = 3", None),
        ("3 and 4", None),
        ("3; 4", None),
        ("first 3; then 4", "4"),
        ("We had 3 apples, and so on; the answer is 4", "4"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


def test_last_answer_tag_and_remove_spans():
    assert last_answer_tag("<answer>a</answer><answer>b") == "a"
    assert answer_tags("<answer>a</answer> x <answer> <answer>b </answer><answer>c") == ["a", "b"]
    assert last_answer_tag("</answer>") is None
    assert remove_spans("a $x$ b $y", "$", "$") == "a   b $y"
    assert remove_spans("\\(1\\)\\(2\\)", "\\(", "\\)", "") == ""


def test_hostile_texts_stay_linear():
    """Unclosed tags and braces repeated a megabyte over: each helper makes one pass, well under a second in all."""
    for text in ("<answer>" * 150_000, "\\boxed{" * 150_000, "{" * 1_000_000, "</think>" * 100_000, "1, " * 300_000):
        split_response(text)
        assert extract_final_answer(text) in (None, "1")
        last_answer_tag(text)
        remove_spans(text, "\\(", "\\)")
