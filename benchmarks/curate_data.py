"""Synthetic trace rows at the scale of OpenR1-Math-220k, for benchmarks/curate_scale.py.

What the rows look like, and why:
- Problems: 60% GSM8K-style word problems from eight templates with random names, items and numbers, so they
  share wording with each other (with $REASONFORGE_SHARED_DATA/traces/gsm8k_train.jsonl present: GSM8K train
  questions instead, 85% with their numbers perturbed; nothing beside the checkout is read otherwise); 40%
  MATH-style problems from templates with LaTeX (fractions, radicals,
  ordered pairs, binomials, polynomial values): half with LaTeX answers, half with integers.
- 2.35 generations per problem on average (1 to 4; OpenR1-Math-220k's default split has 220k traces over 94k
  problems), each a canonical trace (pipeline.data.schema.trace_row) with R1-style thinking of lognormal length
  (median 3,000 characters, capped at 20,000: long enough that reading responses costs what it costs, short enough
  that 220k rows stay near 1.5 GB in memory; real R1 traces run longer).
- Answers: 75% correct and boxed, 5% correct as a last bare number, 15% wrong, 5% with a broken think block, so
  verify has something to drop.
- Duplicates: 4% of problems are re-posts of an earlier problem (identical, or with a prefix that normalisation
  keeps), so dedup has something to find.
- Contamination: `planted` benchmark problems (MATH-500, AIME24, AMC23, GSM8K test) inserted verbatim or with
  harmless edits (a prefix, changed spacing, a trailing sentence), each as one row; their ids start with "planted-".
"""

from __future__ import annotations

import json
import math
import random
import re
from fractions import Fraction

WORDS = ("first", "so", "then", "we", "need", "the", "total", "number", "of", "each", "which", "gives", "let", "me",
         "check", "again", "wait", "that", "means", "is", "because", "this", "value", "equals", "times", "plus",
         "minus", "divided", "by", "answer", "hmm", "right", "now", "compute", "step", "factor", "both", "sides")
STEP_TEMPLATES = ("Let me compute {a} times {b}, which is {ab}.", "Then {ab} plus {c} gives {abc}.",
                  "Wait, let me check that again: {a} * {b} = {ab}, yes.", "So the total is {abc}.",
                  "Hmm, dividing {ab} by {a} gives back {b}, consistent.", "Now subtract {c}: {ab} - {c} = {d}.")
_NUMBER = re.compile(r"\d+")


def sentence_pool(rng: random.Random, size: int = 4000) -> list[str]:
    """Reasoning sentences with numbers in them, to draw thinking text from (building each row's text from scratch
    would make synthesis, not curation, the slow part of the benchmark)."""
    pool = []
    for _ in range(size):
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(1, 500)
        if rng.random() < 0.5:
            pool.append(rng.choice(STEP_TEMPLATES).format(a=a, b=b, c=c, ab=a * b, abc=a * b + c, d=a * b - c))
        else:
            pool.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + ".")
    return pool


def thinking_text(rng: random.Random, pool: list[str]) -> str:
    target = min(20000, int(rng.lognormvariate(math.log(3000), 0.6)))
    return " ".join(rng.choices(pool, k=max(1, target // 60)))


def perturb_numbers(text: str, rng: random.Random) -> str:
    return _NUMBER.sub(lambda m: str(max(1, int(m.group()) + rng.randint(-9, 9))), text)


def gsm8k_problem(rows: list[dict], rng: random.Random) -> tuple[str, str, bool]:
    """(problem, gold answer, is LaTeX): a GSM8K train question, 85% of the time with its numbers perturbed."""
    row = rng.choice(rows)
    gold = row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
    if rng.random() < 0.15:
        return row["question"], gold, False
    return perturb_numbers(row["question"], rng), str(rng.randint(2, 5000)), False


def _latex_fraction(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def math_problem(rng: random.Random) -> tuple[str, str, bool]:
    """(problem, gold answer, is LaTeX) from one of six MATH-style templates with random parameters."""
    kind = rng.randrange(6)
    a, b, c, d = (rng.randint(2, 60) for _ in range(4))
    if kind == 0:
        value = Fraction(a, b) + Fraction(c, d)
        return ((f"Compute $\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}}$. Express your answer as a common "
                f"fraction."), _latex_fraction(value), value.denominator != 1)
    if kind == 1:
        square = rng.choice([4, 9, 16, 25, 36, 49])
        free = rng.choice([2, 3, 5, 6, 7, 10, 11])
        return (f"Simplify $\\sqrt{{{square * free}}}$ completely.", f"{math.isqrt(square)}\\sqrt{{{free}}}",
                True)
    if kind == 2:
        return (f"Find the ordered pair $(x,y)$ that satisfies $x + y = {a + b}$ and $x - y = {a - b}$.",
                f"({a},{b})", True)
    if kind == 3:
        value = Fraction(c - b, a)
        return (f"What is the value of $x$ if ${a}x + {b} = {c}$?", _latex_fraction(value), value.denominator != 1)
    if kind == 4:
        n = rng.randint(5, 30)
        k = rng.randint(1, n - 1)
        return f"Evaluate $\\dbinom{{{n}}}{{{k}}}$.", str(math.comb(n, k)), False
    x = rng.randint(-9, 9)
    return (f"Let $f(x) = {a}x^2 - {b}x + {c}$. What is $f({x})$?", str(a * x * x - b * x + c), False)


def wrong_answer(gold: str, latex: bool, rng: random.Random) -> str:
    if latex:
        return f"\\frac{{{rng.randint(1, 99)}}}{{{rng.randint(100, 199)}}}"
    return str(int(gold) + rng.randint(1, 50)) if gold.lstrip("-").isdigit() else str(rng.randint(1, 999))


def response_parts(gold: str, latex: bool, rng: random.Random, pool: list[str]) -> tuple[str, str, str]:
    """(thinking, answer, kind) for one generation; kind is correct, bare, wrong or broken."""
    thinking = thinking_text(rng, pool)
    roll = rng.random()
    if roll < 0.75:
        return thinking, f"The answer is $\\boxed{{{gold}}}$.", "correct"
    if roll < 0.80 and not latex:
        return thinking, f"So the final answer is {gold}", "bare"
    if roll < 0.95:
        return thinking, f"The answer is $\\boxed{{{wrong_answer(gold, latex, rng)}}}$.", "wrong"
    return thinking + " and so on without closing", "", "broken"


def planted_variant(problem: str, rng: random.Random) -> str:
    """A benchmark problem as a contaminated dataset might hold it: verbatim, prefixed, re-spaced, or extended."""
    kind = rng.randrange(4)
    if kind == 1:
        return "Problem: " + problem
    if kind == 2:
        return "  ".join(problem.split())
    if kind == 3:
        return problem + " Show your work."
    return problem


NAMES = ("Maria", "James", "Aisha", "Tom", "Lena", "Ravi", "Sofia", "Ben", "Chen", "Olga", "Kofi", "Emma")
ITEMS = ("apples", "stickers", "marbles", "books", "cookies", "pencils", "cupcakes", "stamps", "shells", "cards")
WORD_TEMPLATES = (
    "{n} has {a} {i}. {n} buys {b} more {i} and then gives {c} {i} to a friend. How many {i} does {n} have now?",
    "A store sells {i} for ${a} each. {n} buys {b} {i} and pays with a ${d} bill. How much change does {n} get?",
    "{n} reads {a} pages on Monday and {b} pages on Tuesday. The book has {d} pages. How many pages are left?",
    "There are {a} {i} in each box. {n} has {b} boxes and eats {c} {i}. How many {i} are left?",
    "{n} earns ${a} per hour and works {b} hours a week. How much does {n} earn in {c} weeks?",
    "A farmer has {a} rows of plants with {b} plants in each row. {c} plants die. How many plants are left?",
    "{n} saves ${a} every week. How many weeks will it take {n} to save ${d}?",
    "{n} splits {d} {i} equally among {b} friends. How many {i} does each friend get, and how many are left over?",
)


def load_gsm8k_train() -> list[dict]:
    """GSM8K train rows ({question, answer "... #### N"}) from traces/gsm8k_train.jsonl under
    $REASONFORGE_SHARED_DATA when that is set and holds it; else [] (word problems come from templates)."""
    import os
    from pathlib import Path

    folder = os.environ.get("REASONFORGE_SHARED_DATA")
    path = Path(folder) / "traces" / "gsm8k_train.jsonl" if folder else None
    if path is None or not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def template_word_problem(rng: random.Random) -> tuple[str, str, bool]:
    """(problem, gold answer, False): a GSM8K-style word problem from WORD_TEMPLATES with random names and
    numbers (problems share wording with each other, as perturbed GSM8K questions do)."""
    a, b, c = rng.randint(2, 60), rng.randint(2, 30), rng.randint(1, 20)
    text = rng.choice(WORD_TEMPLATES).format(n=rng.choice(NAMES), i=rng.choice(ITEMS), a=a, b=b, c=c,
                                             d=a * b + rng.randint(1, 99))
    return text, str(rng.randint(2, 5000)), False


def synthesize(rows_wanted: int, benchmark_problems: dict[str, list[str]], planted_per_benchmark: int,
               seed: int = 0) -> tuple[list[dict], dict]:
    """(rows, facts, {planted row id: the benchmark problem it holds}): `rows_wanted` canonical trace rows, the
    samples of a problem next to each other (as released data sets hold them), with the planted benchmark rows at
    random places."""
    from pipeline.data.schema import trace_row

    rng = random.Random(seed)
    pool, gsm8k = sentence_pool(rng), load_gsm8k_train()
    rows, problems, kinds = [], [], {}
    planted = [(name, rng.choice(texts)) for name, texts in benchmark_problems.items()
               for _ in range(min(planted_per_benchmark, len(texts)))]
    while len(rows) < rows_wanted - len(planted):
        if problems and rng.random() < 0.04:
            problem, gold, latex = rng.choice(problems)
            problem = rng.choice(["", "Question: ", "Solve this: "]) + problem
        else:
            word = gsm8k_problem(gsm8k, rng) if gsm8k else template_word_problem(rng)
            problem, gold, latex = word if rng.random() < 0.6 else math_problem(rng)
            problems.append((problem, gold, latex))
        pid = f"p{len(problems)}-{len(rows)}"
        for sample in range(min(rng.choice([1, 2, 2, 3, 3, 4]), rows_wanted - len(planted) - len(rows))):
            thinking, answer, kind = response_parts(gold, latex, rng, pool)
            kinds[kind] = kinds.get(kind, 0) + 1
            rows.append(trace_row(problem, thinking, answer, id=pid, source="synthetic", gold_answer=gold,
                                  sample_index=sample))
    planted_problems = {}
    for i, (name, problem) in enumerate(planted):  # at random places: rows stay grouped by problem otherwise
        thinking, answer, _ = response_parts("1", False, rng, pool)
        planted_problems[f"planted-{name}-{i}"] = problem
        rows.insert(rng.randrange(len(rows) + 1), trace_row(planted_variant(problem, rng), thinking, answer,
                                                             id=f"planted-{name}-{i}", source="synthetic",
                                                             gold_answer="1"))
    facts = {"rows": len(rows), "problems": len(problems), "planted": len(planted), "answers": kinds,
             "thinking_chars_mean": round(sum(len(r["thinking"]) for r in rows) / len(rows))}
    return rows, facts, planted_problems
