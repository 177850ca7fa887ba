"""Turning a completion into the parts rewards look at: text, thinking, answer, final answer.

Every function here is total: any string (empty, megabytes long, unbalanced tags or braces) gives a result, never
an exception, and runs in time linear in the length of the text.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .think import THINK_CLOSE, THINK_OPEN, split_response

# A number as a model writes a final one: 1,234.5 | -7 | 14/3 | .5 | \frac{14}{3}. The minus sign counts only when
# it is not a binary minus ("5-3" ends in 3, not -3).
_UNSIGNED = r"(?:\\[dt]?frac\{\d+\}\{\d+\}|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:/\d+)?|\.\d+)"
_SIGN = r"(?:(?<![\w)\]}])-\s?)?"
NUMBER = _SIGN + _UNSIGNED
_UNSIGNED_RE = re.compile(_UNSIGNED)  # no leading lookbehind, so the regex engine can skip to candidate characters
_SIGN_BEFORE_RE = re.compile(_SIGN + r"$")
# "3, 4, 5" / "3 or 4" / "3, or maybe 4" / "x = 2 or x = 3": the number before the last one is joined to it as
# another candidate.
_MAYBE = r"(?:(?:maybe|perhaps|possibly|probably)\b\s*)?"
_CANDIDATE_TAIL_RE = re.compile(
    NUMBER + r"\s*\$?\s*(?:[,;]\s*(?:(?:or|and)\b\s*)?|(?:or|and)\b\s*)" + _MAYBE + r"\$?\s*(?:[a-zA-Z]\s*=\s*)?$"
)
# A hedge around the final box: "\boxed{7} or 8", "\boxed{7}, or maybe 8", "either 7 or \boxed{8}".
_HEDGE_WORD_RE = re.compile(r"\b(?:or|maybe|perhaps|possibly|alternatively|otherwise)\b", re.IGNORECASE)
# Another candidate next to the box: a number, a $...$ or \(...\) span, or a \text{} answer.
_OTHER = NUMBER + r"|\$[^$\n]{1,80}\$|\\\([^\n]{1,80}?\\\)|\\text\{[^{}\n]{1,80}\}"
_OTHER_RE = re.compile(_OTHER)
_HEDGE_BEFORE_RE = re.compile("(" + _OTHER + r")\s*,?\s*or\b\s*" + _MAYBE + r"(?:\$|\\\(|\\\[)?\s*$")
_BOX_OPENER_END_RE = re.compile(r"\\(?:boxed|fbox)\s*\{$")
_DIGITS_APART_RE = re.compile(r"(?<=\d)\s+(?=\d)")
_TEXT_RE = re.compile(r"\\text\s*\{([^{}]*)\}")
_SIMPLE_FRACTION_RE = re.compile(r"(-?)\\frac\{(\d{1,20})\}\{([1-9]\d{0,19})\}")
_RATIO_RE = re.compile(r"(-?)(\d{1,20})/([1-9]\d{0,19})")
_APPROXIMATE_RE = re.compile(r"approx|about|around|roughly|nearly|≈|~", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"-?\d{1,40}(?:\.\d{1,40})?")
_HEDGE_SPAN = 60  # characters after a hedge word in which another number makes it a second candidate
_PROSE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}\s+[A-Za-z]{2,}")
_NORMALIZE_RE = re.compile(r"\\[,!;: ]|\s+|\\?\$|\\left|\\right|(?<=\d),(?=\d{3}\b)|\.$")
_BOX_TOKEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\\[{}]|[{}]")
_LOOKBEHIND_CHARS = 200
# "The final answer is $\left( 3, \frac{\pi}{2} \right)$.": a math span announced as the answer, no digit after it.
_ANNOUNCED_RE = re.compile(
    r"\banswer\b[^$\n]{0,12}?(?:\bis\b|:|=)\s*(?:\*\*)?\s*(\$\$?|\\\(|\\\[)"
    r"((?:\\\$|[^$]){1,300}?)(\$\$?|\\\)|\\\])",
    re.IGNORECASE,
)
_ANNOUNCED_WINDOW = 2000


def completion_text(completion) -> str:
    """The text of a completion: a string as is, or the assistant contents of a chat message list joined by newlines.

    A message's content may be a string or a list of parts (``{"type": "text", "text": ...}``). A message that
    carries its chain of thought in ``reasoning_content`` (or ``thinking``) gets it back as ``<think>...</think>``
    in front of the content, so the rewards see the R1 layout either way. Anything else becomes ``str(...)``.
    """
    return _text(completion, assistant_only=True)


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text") or "" if isinstance(p, dict) else str(p) for p in content)
    text = "" if content is None else str(content)
    reasoning = message.get("reasoning_content") or message.get("thinking")
    if isinstance(reasoning, str) and reasoning.strip() and THINK_CLOSE not in text:
        text = f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n{text}"
    return text


def prompt_text(prompt) -> str:
    """The text of a prompt: a string as is, or the message contents joined by newlines (all roles)."""
    return _text(prompt, assistant_only=False)


def _text(value, assistant_only: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _message_text(value)
    if isinstance(value, (list, tuple)):
        messages = [m for m in value if isinstance(m, dict)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] if assistant_only else []
        return "\n".join(_message_text(m) for m in (assistant or messages))
    return str(value)


def answer_part(text: str) -> str:
    """The part of a response that may hold the final answer: the text after the first ``</think>``.

    A response that opens ``<think>`` and never closes it has not answered: its answer part is empty, so a gold
    answer written while thinking never counts. A response without any think tag is all answer.
    """
    thinking, answer = split_response(text)
    if thinking is None and THINK_OPEN in text:
        return ""
    return answer


def _box_spans(text: str) -> tuple[list[tuple[int, int]], list[int]]:
    """(content spans of the closed boxes, in closing order; content starts of the boxes never closed)."""
    first = min((i for i in (text.find("\\boxed"), text.find("\\fbox")) if i >= 0), default=-1)
    if first < 0:
        return [], []
    spans: list[tuple[int, int]] = []  # (content start, content end) of closed boxes, in closing order
    stack: list[int] = []  # content start of each open group, -1 for a plain brace
    for m in _BOX_TOKEN_RE.finditer(text, first):
        token = m.group()
        if token == "}":
            if stack and (start := stack.pop()) >= 0:
                spans.append((start, m.start()))
        elif token == "{":
            stack.append(-1)
        elif len(token) > 2:  # \boxed{ or \fbox{ (escaped braces are two characters and are skipped)
            stack.append(m.end())
    return spans, [start for start in stack if start >= 0]


def boxed_contents(text: str) -> list[str]:
    """The contents of every outermost closed ``\\boxed{...}`` / ``\\fbox{...}``, in order, stripped.

    Nested braces are matched (one left-to-right pass with a stack; ``\\{`` and ``\\}`` are not grouping braces).
    A box that is never closed is ignored, and so is a box inside another closed box; a closed box inside an
    unclosed one counts.
    """
    spans, _ = _box_spans(text)
    found, covered_to = [], -1
    for start, end in sorted(spans):
        if start > covered_to:
            found.append(text[start:end].strip())
            covered_to = end
    return found


def final_box_unclosed(text: str) -> bool:
    """Whether a box opened after the last closed box (or with none closed) is never closed: the text was cut off
    while writing its final answer (``... \\boxed{8000``), so it has none."""
    spans, unclosed = _box_spans(text)
    return bool(unclosed) and max(unclosed) > max((end for _, end in spans), default=-1)


def last_answer_tag(text: str) -> str | None:
    """The stripped content of the last closed ``<answer>...</answer>``, or None when there is none.

    Found with ``rfind`` rather than a lazy regex: a regex scans to the end of the text for every unclosed
    ``<answer>``, which is quadratic on hostile text.
    """
    close = text.rfind("</answer>")
    if close < 0:
        return None
    start = text.rfind("<answer>", 0, close)
    return None if start < 0 else text[start + len("<answer>") : close].strip()


def answer_tags(text: str) -> list[str]:
    """The stripped contents of every closed ``<answer>...</answer>``, in order (one left-to-right pass)."""
    found, position = [], 0
    while (start := text.find("<answer>", position)) >= 0:
        end = text.find("</answer>", start)
        if end < 0:
            break
        inner = text.rfind("<answer>", start, end)  # "<answer> <answer>x</answer>": the innermost opening
        found.append(text[inner + len("<answer>") : end].strip())
        position = end + len("</answer>")
    return found


def repeat_fraction(text: str | None, n: int) -> float:
    """1 - distinct/all over the word n-grams of ``text`` (lowercased whitespace splits); 0.0 below n words."""
    tokens = text.lower().split() if text else []
    if len(tokens) < n or n < 1:
        return 0.0
    grams = list(zip(*(tokens[j:] for j in range(n))))
    return 1.0 - len(set(grams)) / len(grams)


def remove_spans(text: str, opening: str, closing: str, replacement: str = " ") -> str:
    """``text`` with every ``opening ... closing`` span replaced, scanning left to right once (linear time).

    An opening with no closing after it ends the scan: the rest is kept as is.
    """
    parts, position = [], 0
    while (start := text.find(opening, position)) >= 0:
        end = text.find(closing, start + len(opening))
        if end < 0:
            break
        parts += [text[position:start], replacement]
        position = end + len(closing)
    parts.append(text[position:])
    return "".join(parts)


def _last_number(text: str) -> tuple[int, str] | None:
    """(start, text) of the last number, its sign included. Looks in growing windows at the end of the text, where
    the last number usually is; a match near the window's left edge may be cut, so then the window grows."""
    end = max(map(text.rfind, "0123456789")) + 2  # a number ends with its last digit (or the "}" of a \frac)
    if end < 2:
        return None
    size = 1024
    while True:
        start = max(0, end - size)
        last = None
        for last in _UNSIGNED_RE.finditer(text, start, end):
            pass
        if start == 0 or (last is not None and last.start() > start + 8):
            break
        size *= 8
    if last is None:
        return None
    sign = _SIGN_BEFORE_RE.search(text, max(0, last.start() - 2), last.start())
    begin = sign.start() if sign else last.start()
    return begin, text[begin : last.end()]


def extract_final_answer(answer_text: str) -> str | None:
    """The final answer written in ``answer_text`` (pass the part after ``</think>``), or None when there is none.

    In order of preference: the content of the last closed ``\\boxed{}``; the content of the last
    ``<answer>...</answer>``; a math span announced as the answer with no digit after it ("The final answer is
    $\\frac{\\pi}{2}$."); the last number (``1,234`` comes back as ``1234``). None, i.e. no answer, when:

    - the text was cut off inside its final answer: a box opened after the last closed one is never closed
      (``... \\boxed{8000``), or, without a box, an ``<answer>`` opened after the last ``</answer>``;
    - it gives several candidates: two boxes (or answer tags) with different contents (``normal_form``), a box
      or announced span hedged by a different number, ``$...$`` span or ``\\text{}`` within 60 characters of
      "or", "maybe", "perhaps", ... in its paragraph ("\\boxed{7} or 8", "\\boxed{7}, or maybe 8", "either 7 or
      \\boxed{8}"), or a last number joined to the number before it by a comma, ``or`` or ``and`` ("3, 4, 5",
      "3 or maybe 4", "x = 2 or x = 3"). A hedge in bare words ("\\boxed{\\text{Evelyn}} or maybe Navin") is not
      seen;
    - the chosen box or tag is empty.
    """
    if final_box_unclosed(answer_text):
        return None
    boxes = boxed_contents(answer_text)
    tags = [tag for tag in answer_tags(answer_text) if "\\boxed" not in tag and "\\fbox" not in tag]
    candidates = boxes + [_tag_answer(tag) for tag in tags]
    if len({normal_form(c) for c in candidates} - {""}) > 1:
        return None
    if boxes:
        spans, _ = _box_spans(answer_text)
        start, end = max(spans, key=lambda span: span[1])
        return None if not boxes[-1] or _hedged(answer_text, start, end) else boxes[-1]
    if answer_text.rfind("<answer>") > answer_text.rfind("</answer>"):
        return None
    if tags:
        return tags[-1] or None
    announced = _announced_answer(answer_text)
    if announced is not None:
        return announced or None
    last = _last_number(answer_text)
    if last is None:
        return None
    start, number = last
    if _CANDIDATE_TAIL_RE.search(answer_text[max(0, start - _LOOKBEHIND_CHARS) : start]):
        return None
    return _clean_number(number)


def _announced_answer(text: str) -> str | None:
    """The content of the last "answer is $...$" math span when no digit follows it, "" when it is hedged, else
    None (then the last number is the answer)."""
    offset = max(0, len(text) - _ANNOUNCED_WINDOW)
    last = None
    for last in _ANNOUNCED_RE.finditer(text, offset):
        pass
    if last is None or re.search(r"\d", text[last.end() :]):
        return None
    return "" if _hedged(text, last.start(2), last.end(2)) else last.group(2).strip()


def _clean_number(number: str) -> str:
    return number.replace(",", "").replace(" ", "") if "frac" not in number else number.replace(" ", "")


def normal_form(answer: str) -> str:
    """An answer with spacing, ``$``, ``\\left``/``\\right``, thousands commas, a final period and ``\\text{}``
    wrappers removed, ``\\dfrac`` as ``\\frac``: two answers with the same normal form are the same answer."""
    answer = _TEXT_RE.sub(r"\1", answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    text = _NORMALIZE_RE.sub("", _DIGITS_APART_RE.sub("\0", answer)).replace("\0", " ")  # "1 2" is not "12"
    return str(Fraction(text)) if _DECIMAL_RE.fullmatch(text) else text  # "7.0" and "7" are one answer


def _candidate(other: str) -> str:
    """The normal form of a candidate found next to a box (a number, a math span, a \\text{} answer)."""
    other = other.strip("$").removeprefix("\\(").removesuffix("\\)").strip()
    return normal_form(_clean_number(other) if _DECIMAL_RE.fullmatch(other.replace(",", "")) else other)


def _tag_answer(tag: str) -> str:
    """What an answer tag answers: its content, or the last number in it when it is prose ("The answer is 7")."""
    if not _PROSE_RE.search(tag):
        return tag
    last = _last_number(tag)
    return _clean_number(last[1]) if last else tag


def _hedged(text: str, start: int, end: int) -> bool:
    """Whether the final answer at ``text[start:end]`` (a box's content) has a different candidate offered next to
    it (see ``extract_final_answer``)."""
    final = normal_form(text[start:end])
    before = _BOX_OPENER_END_RE.sub("", text[max(0, start - _LOOKBEHIND_CHARS) : start])
    hedge = _HEDGE_BEFORE_RE.search(before)
    if hedge and not _same(_candidate(hedge.group(1)), final):
        return True
    tail = text[end + 1 : end + 1 + _LOOKBEHIND_CHARS].split("\n\n", 1)[0]  # this paragraph only
    for word in _HEDGE_WORD_RE.finditer(tail):
        other = _OTHER_RE.search(tail, word.end())
        if not other or other.start() - word.end() > _HEDGE_SPAN:
            continue
        approximate = _APPROXIMATE_RE.search(tail[max(word.end(), other.start() - 20) : other.start()])
        if not approximate and not _same(_candidate(other.group()), final):
            return True
    return False


def _same(candidate: str, final: str) -> bool:
    """Whether two normal forms are one answer: equal, or the same number ("0.5" and "\\frac{1}{2}", "25\\%" and
    "0.25", "\\$18" and "18"), so that "\\boxed{\\frac{1}{2}} (or 0.5)" restates rather than hedges."""
    if candidate == final:
        return True
    from .verify import numbers_equal, numeric_value  # here: verify imports this module

    a, b = (_value(x, numeric_value) for x in (candidate, final))
    return a is not None and b is not None and numbers_equal(a, b)


def _value(form: str, numeric_value):
    """A normal form's value as ``rewards.verify.numeric_value`` gives it, simple fractions included."""
    fraction = _SIMPLE_FRACTION_RE.fullmatch(form) or _RATIO_RE.fullmatch(form)
    if fraction is None:
        return numeric_value(form)
    return Fraction(int(fraction.group(1) + fraction.group(2)), int(fraction.group(3))), False, False


def column(kwargs: dict, name: str, reward: str, n: int) -> list:
    """The dataset column ``name`` as a list of ``n`` values; ValueError naming the columns there are otherwise."""
    values = kwargs.get(name)
    if values is None:
        present = ", ".join(sorted(k for k in kwargs if k not in _TRL_KWARGS)) or "(none)"
        raise ValueError(f"Reward '{reward}' needs the dataset column '{name}'; the columns passed are: {present}")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != n:
        raise ValueError(f"Reward '{reward}': column '{name}' must hold one value per completion ({n})")
    return list(values)


_TRL_KWARGS = {"prompts", "completion_ids", "trainer_state", "log_extra", "log_metric"}
