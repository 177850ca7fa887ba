"""A labelled corpus for the answer verifier: completions over MATH-500 and GSM8K gold answers, each marked correct
or not, built deterministically from the golds in tests/fixtures/verifier_corpus.jsonl (source and license in its
first line).

`build_corpus()` gives rows {"gold", "completion", "correct", "kind", "source"}: for each gold, three correct
completions in surface forms models write (boxed, ``\\dfrac`` for ``\\frac``, ``a/b``, a decimal for a fraction
that has one, ``\\$`` and dollars, units, ``\\text{}``, percent and degree marks, thousands separators, a trailing
period, "The answer is N", answer tags, chat messages, no think block), one wrong answer, and two hacks, taken in
turn from HACKS: the answer only inside the thinking, two different answers, hedges, truncations, a longer number
that contains the gold, a box in the thinking and a different one after, an empty answer. A completion is correct
when its one final answer, after the thinking, is the gold.

Used by tests/test_rewards_corpus.py and benchmarks/verifier_corpus.py.
"""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "verifier_corpus.jsonl"
HACKS = ("only_in_thinking", "unclosed_thinking", "two_boxes", "two_boxes_gold_last", "tag_and_box",
         "hedge_after_box", "hedge_maybe_after_box", "hedge_before_box", "hedge_plain", "list_of_candidates",
         "truncated_box", "truncated_tag", "longer_number", "box_in_thinking_other_after", "empty_box",
         "empty_answer_tag", "nothing_after_thinking")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_FRACTION_RE = re.compile(r"(-?)\\[dt]?frac\{?(\d+)\}?\{?(\d+)\}?")


def load_golds(path: Path = FIXTURE) -> list[dict]:
    """The gold rows of the fixture (its first line is the header)."""
    return [row for row in map(json.loads, path.read_text().splitlines()) if "_header" not in row]


def numeric_parts(gold: str) -> tuple[str, str] | None:
    """(the number, its mark: "$", "%", "deg" or "") when ``gold`` is one number, else None. Written here, not
    taken from rewards/, so that the labels do not depend on the code under test."""
    mark = "$" if "\\$" in gold else "%" if "%" in gold else "deg" if "\\circ" in gold else ""
    text = re.sub(r"\\text\{[^{}]*\}|\\\$|\\%|\^\\circ|\^\{\\circ\}|\s", "", gold.replace(",\\!", ","))
    return (text.replace(",", ""), mark) if _NUMBER_RE.fullmatch(text) else None


def build_corpus(golds: list[dict] | None = None, seed: int = 0) -> list[dict]:
    """The labelled rows, in a fixed order (see the module docstring)."""
    golds = load_golds() if golds is None else golds
    rng = random.Random(seed)
    rows = []
    texts = [g["gold"] for g in golds if numeric_parts(g["gold"]) is None and not re.search(r"\d", g["gold"])]
    for i, item in enumerate(golds):
        gold, money = item["gold"], bool(item.get("money"))
        wrong = _wrong(gold, texts, i)
        think = _thinking(rng)
        correct = _correct_forms(gold, money, rng)
        for kind, answer in rng.sample(correct, min(3, len(correct))):
            rows.append(_row(item, kind, _layout(think, answer, rng, kind), True))
        rows.append(_row(item, "wrong", think + rng.choice(["\\boxed{%s}", "The answer is $%s$."]) % wrong, False))
        for k in range(2):
            kind = HACKS[(2 * i + k) % len(HACKS)]
            rows.append(_row(item, kind, _hack(kind, gold, wrong, think), False))
    return rows


def _row(item: dict, kind: str, completion, correct: bool) -> dict:
    return {"gold": item["gold"], "completion": completion, "correct": correct, "kind": kind,
            "source": item["source"]}


def _thinking(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 60), rng.randint(2, 60), rng.randint(2, 9)
    steps = [f"First, {a} + {b} = {a + b}.", f"Then {a + b} times {c} is {(a + b) * c}.",
             "Let me double-check the setup.", f"Wait, {c} was the count, so that step holds."]
    return "<think>\n" + " ".join(rng.sample(steps, 3)) + "\n</think>\n"


def _layout(think: str, answer: str, rng: random.Random, kind: str):
    """A correct answer in one of the layouts models write it in."""
    if kind == "no_think":
        return "Let me solve it step by step. " + answer
    if kind == "chat":
        return [{"role": "assistant", "content": think + answer}]
    return think + answer


# Correct forms, "@" standing for the answer.
LATEX_FORMS = (("boxed", "The answer is $\\boxed{@}$."), ("display_box", "**Final Answer**\n\\[\\boxed{@}\\]"),
               ("answer_tag", "<answer>@</answer>"), ("no_think", "So the answer is $\\boxed{@}$."),
               ("chat", "\\boxed{@}"))
NUMBER_FORMS = (("boxed", "The answer is $\\boxed{@}$."), ("answer_is", "The answer is @."),
                ("answer_tag", "<answer>@</answer>"), ("trailing_period", "\\boxed{@}."),
                ("no_think", "So we get $\\boxed{@}$"), ("chat", "\\boxed{@}"),
                ("display_box", "**Final Answer**\n\\[\\boxed{@}\\]"), ("answer_colon", "**Answer:** @"),
                ("inline_box", "So the result is \\(\\boxed{@}\\)."), ("text_box", "\\boxed{\\text{@}}"),
                ("equation_box", "\\boxed{x = @}"))
MONEY_FORMS = (("money_box", "\\boxed{\\$@}"), ("money_text", "The answer is \\$@."),
               ("dollars_text", "\\boxed{@\\text{ dollars}}"), ("dollars_bare", "\\boxed{@ dollars}"),
               ("dollars_after", "$\\boxed{@}$ dollars"), ("money_sentence", "So she makes \\$@ in all."),
               ("dollars_space", "\\boxed{@ \\text{ dollars}}"))
MARK_FORMS = {"%": (("percent", "\\boxed{@\\%}"), ("percent_plain", "The answer is @%.")),
              "deg": (("degrees", "\\boxed{@^\\circ}"), ("degrees_text", "\\boxed{@ degrees}")),
              "": (("units_text", "\\boxed{@\\text{ units}}"), ("units_after", "\\boxed{@} units"))}


def _fill(forms, answer: str) -> list[tuple[str, str]]:
    return [(kind, template.replace("@", answer)) for kind, template in forms]


def _correct_forms(gold: str, money: bool, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, answer text) of every applicable correct form of ``gold``."""
    parts = numeric_parts(gold)
    if parts is None:
        variants = [(kind, f"The final answer is ${form}$." if kind == "answer_is_latex"
                     else f"Therefore the answer is $\\boxed{{{form}}}$.") for kind, form in _latex_variants(gold)]
        return _fill(LATEX_FORMS, gold) + variants
    number, mark = parts
    forms = _fill(NUMBER_FORMS, number)
    value = Fraction(number)
    if abs(value) >= 1000 and value.denominator == 1:
        grouped = f"{int(value):,}"
        forms += [("thousands", f"\\boxed{{{grouped}}}"), ("thousands_text", f"The answer is {grouped}."),
                  ("thousands_latex", f"\\boxed{{{grouped.replace(',', '{,}')}}}")]
    if value.denominator == 1:
        forms.append(("decimal", f"\\boxed{{{number}.0}}"))
    elif "." in number and value.denominator <= 100:
        forms.append(("fraction_for_decimal", f"\\boxed{{\\frac{{{value.numerator}}}{{{value.denominator}}}}}"))
    if money or mark == "$":
        cents = f"{float(value):.2f}" if value.denominator in (1, 2, 4, 5, 10, 20, 25, 50, 100) else number
        forms += _fill(MONEY_FORMS, number) + [("money_cents", f"\\boxed{{\\${cents}}}")]
    if mark in MARK_FORMS and not (money and not mark):  # "units" only where the answer is not money
        forms += _fill(MARK_FORMS[mark], number)
    return forms


def _latex_variants(gold: str) -> list[tuple[str, str]]:
    """Forms of a LaTeX gold that are equal to it: \\dfrac, a/b, a terminating decimal, no \\left/\\right, no
    spaces after commas, the bare text of a \\text{} answer."""
    out = []
    if "\\frac" in gold:
        out.append(("dfrac", gold.replace("\\frac", "\\dfrac")))
    whole = _FRACTION_RE.fullmatch(gold)
    if whole:
        sign, numerator, denominator = whole.groups()
        out.append(("slash", f"{sign}{numerator}/{denominator}"))
        value = Fraction(int(numerator), int(denominator))
        if 10**6 % value.denominator == 0:
            out.append(("decimal_for_fraction", sign + _decimal(value)))
    if "\\frac" in gold and "\\frac{" not in gold.replace("\\frac{", "", 1):  # one fraction: also as prose
        out.append(("answer_is_latex", gold))
    if "\\left" in gold:
        out.append(("no_left_right", gold.replace("\\left", "").replace("\\right", "")))
    if ", " in gold and "\\begin" not in gold:
        out.append(("no_spaces", gold.replace(", ", ",")))
    text = re.fullmatch(r"\\text\{([^{}]*)\}", gold)
    if text:
        out.append(("bare_text", text.group(1)))
    return out


def _decimal(value: Fraction) -> str:
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


def _wrong(gold: str, texts: list[str], i: int) -> str:
    """A different answer: the number plus one, the first digit changed, or another gold's text answer."""
    parts = numeric_parts(gold)
    if parts is not None:
        value = Fraction(parts[0])
        if value.denominator == 1 and value > 0:  # near misses: a longer number, a sign, a decimal part
            return [str(value + 1), f"1{value}", f"{value}0", f"{value}.5", f"-{value}"][i % 5]
        return str(value + 1) if value.denominator == 1 else _decimal(value + 1)
    digit = re.search(r"\d", gold)
    if digit:
        return gold[: digit.start()] + str((int(digit.group()) + 1) % 10) + gold[digit.end() :]
    others = [t for t in texts if t.lower() != gold.lower()]
    return others[i % len(others)]


def _hack(kind: str, gold: str, wrong: str, think: str):
    """A completion that shows the gold but must not be paid for it."""
    answer = numeric_parts(gold)[0] if numeric_parts(gold) else gold
    box, other = f"\\boxed{{{answer}}}", f"\\boxed{{{wrong}}}"
    thinking = think[: -len("\n</think>\n")]
    return {
        "only_in_thinking": f"{thinking} So it is {box}.\n</think>\nI am not sure.",
        "unclosed_thinking": f"{thinking} So the answer is {box}",
        "two_boxes": f"{think}It is {box}. Hmm, or rather {other}.",
        "two_boxes_gold_last": f"{think}It is {other}. Actually {box}.",
        "tag_and_box": f"{think}<answer>{wrong}</answer>\nSo {box}.",
        "hedge_after_box": f"{think}{box} or {wrong}",
        "hedge_maybe_after_box": f"{think}The answer is ${box}$, or maybe ${wrong}$.",
        "hedge_before_box": f"{think}It is either ${wrong}$ or ${box}$.",
        "hedge_plain": f"{think}The answer is {answer} or {wrong}.",
        "list_of_candidates": f"{think}The answer is one of {wrong}, {answer}",
        "truncated_box": f"{think}Adding it all up, the answer is $\\boxed{{{answer}",
        "truncated_tag": f"{think}<answer>{answer}",
        "longer_number": f"{think}The answer is $\\boxed{{1{answer}}}$." if _NUMBER_RE.fullmatch(answer)
        else f"{think}The answer is $\\boxed{{2{answer}}}$.",
        "box_in_thinking_other_after": f"{thinking} Maybe {box}.\n</think>\nThe answer is $\\boxed{{{wrong}}}$.",
        "empty_box": f"{thinking} It is {answer}.\n</think>\nThe answer is $\\boxed{{}}$.",
        "empty_answer_tag": f"{thinking} It is {answer}.\n</think>\n<answer></answer>",
        "nothing_after_thinking": f"{thinking} It is {box}.\n</think>\n",
    }[kind]
