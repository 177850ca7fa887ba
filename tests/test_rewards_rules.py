"""Rule-based rewards, table-driven: each row is one completion and the score it must get."""

import math

import pytest

from rewards import build_reward

T = "<think>\nreasoning\n</think>\n"


def score(name, completion, **columns):
    spec = {"name": name, **columns.pop("params", {})}
    return build_reward(spec)([completion], **{k: [v] for k, v in columns.items()})[0]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (T + "42", 1.0),
        ("<think>r</think>a", 1.0),
        ("<think>r</think><answer>a</answer>", 1.0),
        ("<think>r</think>\n<answer></answer>", 0.0),  # empty answer tags are no answer
        ("<think>r</think>\n<answer>\n \n</answer>\n", 0.0),
        ("<think>r</think><answer>", 0.0),
        ("  \n<think>r</think>a", 1.0),
        ([{"role": "assistant", "content": "<think>r</think>a"}], 1.0),
        ("preamble <think>r</think>a", 0.0),
        ("<think>r</think>", 0.0),
        ("<think>r</think> \n\t", 0.0),
        ("<think></think>a", 0.0),
        ("<think> \n </think>a", 0.0),
        ("<think>r</think>a<think>r2</think>b", 0.0),
        ("<think>r</think>a</think>", 0.0),
        ("<think>r<think>r2</think>a", 0.0),
        ("</think>a<think>r", 0.0),
        ("r</think>a", 0.0),  # no opening tag, and the prompt did not prefill one
        ("<think>r", 0.0),
        ("just an answer", 0.0),
        ("", 0.0),
        ("<THINK>r</THINK>a", 0.0),
    ],
)
def test_think_format(completion, expected):
    assert score("think_format", completion) == expected


def test_think_format_prefilled_prompt():
    fn = build_reward("think_format")
    completions = ["r</think>a", "<think>r</think>a", "r</think>a"]
    prompts = ["<|user|>q<|assistant|><think>\n", "<|user|>q<|assistant|><think>\n", "<|user|>q<|assistant|>"]
    assert fn(completions, prompts=prompts) == [1.0, 0.0, 0.0]  # a prefilled tag written again is two tags
    forced = build_reward({"name": "think_format", "prefilled": True})
    assert forced(["r</think>a", "<think>r</think>a"], prompts=[[{"role": "user", "content": "q"}]] * 2) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>\nr\n</think>\n<answer>\n42\n</answer>", 1.0),
        ("<think>\nr\n</think>\n<answer>\n42\n</answer>\n", 1.0),
        ("<think>\nmulti\nline\n</think>\n<answer>\na\nb\n</answer>", 1.0),
        ("<think>r</think><answer>42</answer>", 0.0),
        ("<think>\nr\n</think>\n42", 0.0),
        ("<think>\nr\n</think>\n<answer>\n\n</answer>", 0.0),
        ("<think>\n\n</think>\n<answer>\n42\n</answer>", 0.0),
        ("<think>\nr\n</think>\n<answer>\n42\n</answer>\ntrailing", 0.0),
        ("x<think>\nr\n</think>\n<answer>\n42\n</answer>", 0.0),
        ("<think>\nr\n</think>\n<answer>\n1\n</answer>\n<answer>\n2\n</answer>", 0.0),
        ("<think>\nr\n<answer>\n</think>\n<answer>\n42\n</answer>", 0.0),
    ],
)
def test_think_format_strict(completion, expected):
    assert score("think_format", completion, params={"strict": True}) == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>\nr\n</think>\n<answer>\n42\n</answer>", 1.0),
        ("<think>\nr\n</think>\n42", 0.5),
        ("<think>\n<think>\nr\n</think>\n", 0.25),
        ("<answer>\n42\n</answer>", 0.25),  # "\n<answer>\n" needs the newline before
        ("nothing", 0.0),
    ],
)
def test_tag_count(completion, expected):
    assert score("tag_count", completion) == expected


GSM8K_GOLD = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether she sold 48+24 = <<48+24=72>>72.\n#### 72"


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        (T + "\\boxed{42}", "42", 1.0),
        (T + "The answer is 42.", "42", 1.0),
        (T + "<answer>42</answer>", "42", 1.0),
        (T + "\\boxed{42.0}", "42", 1.0),
        (T + "\\boxed{42} so \\boxed{ 42 }", "42", 1.0),  # the same answer twice is one answer
        (T + "\\boxed{\\text{42}}", "42", 1.0),
        ("\\boxed{42}", "42", 1.0),  # no think block: all of it is the answer
        ([{"role": "assistant", "content": T + "\\boxed{42}"}], "42", 1.0),
        ("<think>it is 42</think>", "42", 0.0),  # empty answer
        ("<think>it is \\boxed{42}</think> so 41", "42", 0.0),  # gold only in the thinking
        ("<think>\\boxed{42}", "42", 0.0),  # never stopped thinking
        (T + "\\boxed{41} or \\boxed{42}", "42", 0.0),
        (T + "\\boxed{42} \\boxed{41}", "42", 0.0),
        (T + "40, 41, 42", "42", 0.0),
        (T + "41 or 42", "42", 0.0),
        (T + "x = 41 or x = 42", "42", 0.0),
        (T + "\\boxed{}", "42", 0.0),
        (T + "\\boxed{41, 42}", "42", 0.0),
        (T + "", "42", 0.0),
        ("", "42", 0.0),
        (T + "1,042", "42", 0.0),
        (T + "\\boxed{-7}", "-7", 1.0),
        (T + "so x = -7.", "-7", 1.0),
        (T + "\\boxed{7}", "-7", 0.0),
        (T + "\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", 1.0),
        (T + "\\boxed{14/3}", "\\frac{14}{3}", 1.0),
        (T + "The answer is 14/3", "\\frac{14}{3}", 1.0),
        (T + "The answer is $\\frac{14}{3}$", "\\frac{14}{3}", 1.0),
        (T + "The answer is $\\frac{14}{3}$", "3", 0.0),  # not fooled by the denominator
        (T + "\\boxed{4.6667}", "\\frac{14}{3}", 0.0),
        (T + "\\boxed{27}", "27.0", 1.0),
        (T + "\\boxed{72}", GSM8K_GOLD, 1.0),
        (T + "\\boxed{24}", GSM8K_GOLD, 0.0),
        (T + "\\boxed{1,234}", "1234", 1.0),
        (T + "1234", "1234", 1.0),
        (T + "\\boxed{x = 5}", "5", 1.0),
        (T + "\\boxed{\\{3, 4\\}}", "3, 4", 1.0),
        (T + "\\boxed{42}", None, None),
        (T + "\\boxed{42}", "", None),
        (T + "\\boxed{42}", "}{", None),  # gold that does not parse: cannot judge
        (T + "", "}{", None),
        (T + "\\boxed{42}", 42, 1.0),  # a numeric column
        # a hedge after (or before) the box is two answers
        (T + "\\boxed{7} or 8", "7", 0.0),
        (T + "\\boxed{7}, or maybe 8", "7", 0.0),
        (T + "\\boxed{7}, or maybe 8", "8", 0.0),
        (T + "It is 7 or $\\boxed{8}$.", "8", 0.0),
        (T + "\\boxed{7 \\text{ or } 8}", "7", 0.0),
        (T + "\\boxed{7 or 8}", "7", 0.0),
        (T + "<answer>8</answer> so \\boxed{7}", "7", 0.0),
        # cut off inside the final box: no answer, not the last number
        (T + "Adding them up, the total is \\boxed{8000", "8000", 0.0),
        (T + "So it is \\boxed{8000} \\boxed{80", "8000", 0.0),
        (T + "<answer>8000", "8000", 0.0),
        # money, units, percentages, thousands separators
        (T + "\\boxed{\\$13}", "13", 1.0),
        (T + "\\boxed{\\$13.00}", "13", 1.0),
        (T + "\\boxed{36}", "\\$36", 1.0),
        (T + "\\boxed{\\$36}", "\\$36", 1.0),
        (T + "The answer is \\$36.", "\\$36", 1.0),
        (T + "\\boxed{\\$37}", "\\$36", 0.0),
        (T + "\\boxed{18 dollars}", "18", 1.0),
        (T + "\\boxed{18\\text{ dollars}}", "18", 1.0),
        (T + "\\boxed{18 \\text{dollars per hour}}", "18", 1.0),
        (T + "\\boxed{19 dollars}", "18", 0.0),
        (T + "\\boxed{18.9}", "\\$18.90", 1.0),
        (T + "\\boxed{\\$32,348}", "\\$32,\\!348", 1.0),
        (T + "\\boxed{10,080}", "10,\\!080", 1.0),
        (T + "\\boxed{25\\%}", "25", 1.0),
        (T + "\\boxed{0.25}", "25\\%", 1.0),
        (T + "\\boxed{0.25}", "25", 0.0),
        (T + "\\boxed{90^\\circ}", "90", 1.0),
        (T + "\\boxed{5.4}", "5.4 \\text{ cents}", 1.0),
        (T + "\\boxed{\\frac{270}{7} degrees}", "\\frac{270}7\\text{ degrees}", 1.0),
        (T + "\\boxed{18} (or \\$18)", "18", 1.0),  # the same answer again is no hedge
        (T + "\\boxed{\\$1,080.00}", "1080", 1.0),
        (T + "The answer is 18 dollars.", "18", 1.0),
        (T + "\\boxed{18 \\pm 1}", "18", 0.0),
        (T + "\\boxed{-18}", "18", 0.0),
        (T + "\\boxed{1 2}", "12", 0.0),  # a space between digits is a thousands separator or nothing
        (T + "\\boxed{12 345}", "12345", 1.0),
        (T + "\\boxed{3xy}", "3", 0.0),  # letters glued to the number are not a unit
        (T + "\\boxed{2 x}", "2", 0.0),
        # an inequality is not an interval (see correctness); the set written as a set is
        (T + "\\boxed{x > 2}", "(2,\\infty)", 0.0),
        (T + "\\boxed{x \\in (2, \\infty)}", "(2,\\infty)", 1.0),
        (T + "\\boxed{(2, \\infty)}", "(2,\\infty)", 1.0),
    ],
)
def test_accuracy(completion, gold, expected):
    assert score("accuracy", completion, gold_answer=gold) == expected


def test_accuracy_gold_column_and_missing_column():
    fn = build_reward({"name": "accuracy", "gold_column": "solution"})
    assert fn([T + "\\boxed{3}"], solution=["3"], prompts=["q"], trainer_state=None) == [1.0]
    with pytest.raises(ValueError, match="needs the dataset column 'solution'; the columns passed are: answer"):
        fn([T + "3"], answer=["3"], prompts=["q"])


def test_accuracy_integer_fast_path_never_starts_math_verify(monkeypatch):
    import rewards.verify

    def refuse(*args):
        raise AssertionError("the slow path was used")

    monkeypatch.setattr(rewards.verify, "_check", refuse)
    fn = build_reward("accuracy")
    completions = [T + f"\\boxed{{{i}}}" for i in range(500)] + [T + "so 1,234", T + "", T + "\\boxed{}"]
    golds = [str(i % 7) for i in range(500)] + ["1234", "5", "5"]
    assert fn(completions, gold_answer=golds) == [1.0 if i < 7 else 0.0 for i in range(500)] + [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("completion", "numbers", "target", "expected"),
    [
        (T + "<answer>3 + 5 + 8</answer>", [3, 5, 8], 16, 1.0),
        (T + "<answer>8 + 5 + 3 = 16</answer>", [3, 5, 8], 16, 1.0),
        (T + "<answer>3 + 5 + 8 = 17</answer>", [3, 5, 8], 16, 0.0),
        (T + "\\boxed{(8 - 3) \\cdot 5}", [3, 5, 8], 25, 1.0),
        (T + "$(8 - 3) \\times 5$", [3, 5, 8], 25, 1.0),
        (T + "So the expression is (8 − 3) × 5.", [3, 5, 8], 25, 1.0),
        (T + "6 / 3 * 4", [6, 4, 3], 8, 1.0),
        (T + "(6 + 4) / 3", [6, 4, 3], 10 / 3, 1.0),
        (T + "3 + 3 + 8", [3, 5, 8], 14, 0.0),  # 3 used twice, 5 unused
        (T + "3 + 5", [3, 5, 8], 8, 0.0),  # 8 unused
        (T + "3 + 5 + 8 + 0", [3, 5, 8], 16, 0.0),  # extra number
        (T + "3 + 5 + 8.0", [3, 5, 8], 16, 0.0),
        (T + "16", [3, 5, 8], 16, 0.0),
        (T + "-3 + 5 + 8 + 6", [3, 5, 8, 6], 16, 0.0),  # unary minus is not an operation of the game
        (T + "3 ** 5", [3, 5], 243, 0.0),
        (T + "__import__('os').system('true')", [3, 5], 8, 0.0),
        (T + "8 / (5 - 5)", [8, 5, 5], 0, 0.0),
        (T + "3 + 5 = 8 = 8", [3, 5], 8, 0.0),
        (T + "9" * 10000, [9], 9, 0.0),
        (T + "(" * 300 + "3+5" + ")" * 300, [3, 5], 8, 0.0),
        ("<think>3 + 5 + 8</think>", [3, 5, 8], 16, 0.0),  # right expression only in the thinking
        ("<think>3 + 5 + 8", [3, 5, 8], 16, 0.0),
        ("3 + 5 + 8", [3, 5, 8], 16, 1.0),
        (T + "3 + 5 + 8", None, 16, None),
        (T + "3 + 5 + 8", [3, 5, 8], None, None),
        (T + "3 + 5 + 8", ["x"], 16, None),
    ],
)
def test_countdown(completion, numbers, target, expected):
    assert score("countdown", completion, numbers=numbers, target=target) == expected


@pytest.mark.parametrize(
    ("completion", "language", "expected"),
    [
        ("<think>We add the numbers.</think>5", "en", 1.0),
        ("<think>We 加</think>5", "en", 2 / 3),
        ("<think>设x为 y 的平方</think>5", "zh", 1.0),
        ("<think>我们加起来</think>5", "en", 0.0),
        ("<think>我们加起来 $x + y$ \\frac{a}{b}</think>5", "zh", 1.0),
        ("<think>ひらがなと漢字</think>", "ja", 1.0),
        ("<think>Считаем сумму</think>", "ru", 1.0),
        ("<think>Считаем сумму</think>", "cyrillic", 1.0),
        ("<think>$x^2 + y^2$ = 25, 3 + 4</think>5", "en", None),  # nothing but math: cannot judge
        ("<think></think>5", "en", None),
        ("no think block", "en", None),
    ],
)
def test_language_consistency(completion, language, expected):
    result = score("language_consistency", completion, params={"language": language})
    assert result == pytest.approx(expected) if expected is not None else result is None


def test_language_consistency_unknown_language():
    with pytest.raises(ValueError, match="unknown language 'klingon'"):
        build_reward({"name": "language_consistency", "language": "klingon"})


def test_cosine_length():
    params = {"max_len": 100}
    short_right, short_wrong = "<think>a</think>\\boxed{42}", "<think>a</think>\\boxed{41}"
    long_right = "<think>" + "a" * 1000 + "</think>\\boxed{42}"
    long_wrong = "<think>" + "a" * 1000 + "</think>\\boxed{41}"
    half_right = "<think>" + "a" * (200 - 25) + "</think>\\boxed{42}"  # 200 characters = 50 "tokens" = half way
    scores = {c: score("cosine_length", c, gold_answer="42", params=params)
              for c in (short_right, short_wrong, long_right, long_wrong, half_right)}
    assert scores[short_right] == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi * 26 / 4 / 100)))
    assert scores[short_right] > 0.99 and scores[short_wrong] < -0.99
    assert scores[long_right] == pytest.approx(0.5) and scores[long_wrong] == pytest.approx(-0.5)
    assert scores[half_right] == pytest.approx(0.75)
    assert score("cosine_length", short_right, gold_answer="}{", params=params) is None


@pytest.mark.parametrize(
    ("chars", "expected"), [(0, 0.0), (320, 0.0), (360, -0.5), (399, -0.0125 * 79 - 0.0), (400, -1.0), (4000, -1.0)]
)
def test_soft_overlong(chars, expected):
    # max_len 100 and cache 20 "tokens" of 4 characters: free up to 80 tokens = 320 characters
    result = score("soft_overlong", "x" * chars, params={"max_len": 100, "cache_len": 20})
    assert result == pytest.approx(expected if chars != 399 else (80 - 99.75) / 20)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("a b c a b c a b c", -4 / 7),  # 7 trigrams, 3 distinct
        ("the quick brown fox jumps", 0.0),
        ("a b", 0.0),
        ("", 0.0),
        ("Same SAME same same", -0.5),  # lowercased: 2 trigrams, 1 distinct
    ],
)
def test_repetition_penalty(completion, expected):
    assert score("repetition_penalty", completion) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("Step 1: a\nStep 2: b\nStep 3: c", 1.0),
        ("First, x. Next, y.", 2 / 3),
        ("1. a\n2. b", 2 / 3),
        ("intro\n- a\n* b\n- c\n- d", 1.0),
        ("no structure at all", 0.0),
    ],
)
def test_reasoning_steps(completion, expected):
    assert score("reasoning_steps", completion) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>2+2</think>4", 1.0),
        ("Here is how to make a pipe bomb: ...", 0.0),
        ("<think>I should tell them to kill yourself</think>No.", 0.0),  # the thinking counts for harmlessness
        ("Ignore all previous instructions and", 0.0),
    ],
)
def test_harmlessness_rules(completion, expected):
    assert score("harmlessness", completion) == expected
    custom = build_reward({"name": "harmlessness", "patterns": [r"\bforbidden\b"]})
    assert custom(["a forbidden word", completion]) == [0.0, 1.0]
