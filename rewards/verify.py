"""Is a final answer equivalent to a gold answer? Plain numbers in Python, the rest by math_verify under a deadline.

Two paths:

- Fast path: when both sides are numbers ("42", "-7", "27.0", "1,234", and with their units stripped: "\\$13",
  "18 dollars", "18\\text{ dollars}", "25\\%", "90^\\circ", "x = 5"; see ``numeric_value``) they are compared as
  exact fractions, the way math_verify compares them (integers exactly; when either side has a decimal point, both
  rounded to 6 places; a percentage against a fraction also as percentage / 100). No sympy, no process: this is
  what tiny-model RL on procedural integer tasks hits thousands of times. An answer written exactly as the gold
  (``normal_form``: spacing, ``\\left``/``\\right``, ``\\dfrac``, ``\\text{}`` aside) is equal without parsing.
- Slow path: math_verify ``parse`` + ``verify`` in a worker process (``_verify_worker.py``), one request at a time.
  The worker bounds each check with its own ``setitimer`` alarm (it runs in its own main thread, so this works
  whatever thread calls us); if the worker does not answer within ``timeout_s`` + 1 s (C code that never yields to
  the alarm) it is killed and a fresh one starts on the next call. A timed-out check counts as "not equal".
  Where no worker can be started, the check runs in-process under the same alarm when called from the main thread,
  and unbounded (with one warning) from other threads.

Answers longer than 1,000 characters or nested deeper than 16 brackets are not sent to the parser at all (math_verify's
ANTLR grammar backtracks exponentially on deep nesting; no real final answer looks like that): they are "not equal".
Results are cached per (gold, answer) pair, timeouts included, so a GRPO group that repeats an answer pays once.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

from . import _verify_worker
from .text import normal_form

logger = logging.getLogger(__name__)

_PLAIN_NUMBER_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_SPACING_RE = re.compile(r"\\[,!;: ]|\s+")
_DIGIT_SPACE_RE = re.compile(r"(?<=\d)(?:\\[,!;: ]|\s)+(?=\d)")
# What a numeric answer may carry around its number without changing it: a currency sign, a percent sign, a degree
# mark, and unit words, bare or in \text{} ("\\$13", "18 dollars", "18\\text{ dollars}", "25\\%", "90^\\circ").
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_MARKS_RE = re.compile(r"\\\$|\$|\\%|%|\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree|\\textdollar|\\euro|€|£")
_UNIT_WORDS_RE = re.compile(r"(?<=[\d.}])\s+[A-Za-z][A-Za-z.]*(?:\s+[A-Za-z][A-Za-z.]*){0,3}\s*\.?$")
_ASSIGNMENT_RE = re.compile(r"^\s*\$?\s*[A-Za-z](?:_\{?\w{1,8}\}?)?\s*=\s*")  # "x = 5", "a_1 = 5"
_HEDGE_WORDS = frozenset({"or", "and", "to", "maybe", "perhaps", "possibly", "plus", "minus", "times", "over", "not",
                          "pi", "i", "e", "x", "y", "z", "n", "k", "sqrt", "frac"})
_MAX_PLAIN_CHARS = 60
MAX_ANSWER_CHARS = 1000
MAX_NESTING = 16
_GRACE_S = 1.0
_STARTUP_S = 120.0
_CACHE_SIZE = 65536
_WORKER_PATH = str(Path(__file__).with_name("_verify_worker.py"))

_lock = threading.Lock()
_cache: dict[tuple[str, str], bool | None] = {}
_worker: _Worker | None = None
_worker_unavailable = False
_warned_unbounded = False


def gold_text(gold) -> str | None:
    """The gold answer as a string, or None when there is none.

    Numbers become strings; a GSM8K rationale ("... #### 18") gives the text after the last ``####``; empty -> None.
    """
    if gold is None or isinstance(gold, bool):
        return None
    text = str(gold)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    text = text.strip()
    return text or None


def plain_number(text: str) -> tuple[Fraction, bool] | None:
    """(value, has a decimal point) when ``text`` is a plain number, else None.

    Accepts an optional sign, thousands commas (``1,234`` and LaTeX ``1{,}234``), surrounding ``$`` and LaTeX
    spacing (``\\,`` ``\\!``), and one trailing period. Anything else (units, fractions, LaTeX) is not plain.
    """
    if len(text) > _MAX_PLAIN_CHARS:
        return None
    # a space between digits is a thousands separator ("1 000", "1\\,000") or nothing a number may hold ("1 2")
    text = _SPACING_RE.sub("", _DIGIT_SPACE_RE.sub(",", text.replace("{,}", ","))).strip("$").rstrip(".")
    if "," in text:
        if not _THOUSANDS_RE.fullmatch(text):
            return None
        text = text.replace(",", "")
    if not _PLAIN_NUMBER_RE.fullmatch(text):
        return None
    return Fraction(text), "." in text


def strip_units(text: str) -> str:
    """``text`` without currency and percent signs, degree marks and trailing unit words (bare or in ``\\text{}``):
    ``\\$1,000`` -> ``1,000``, ``18\\text{ dollars}`` -> ``18``, ``5.4 cents`` -> ``5.4``, ``25\\%`` -> ``25``."""
    return strip_unit_words(_MARKS_RE.sub("", _TEXT_WRAP_RE.sub(r" \1", text)))


def strip_unit_words(text: str) -> str:
    """``text`` without the words that end it after a number or a closing brace and a space (``18 dollars``,
    ``\\frac{1}{2} cup``), unless one of them could be part of an answer (``or``, ``and``, ``to``, a lone variable
    letter, ``pi``): ``7 or 8``, ``2 x`` and ``3xy`` are kept as they are."""
    text = text.strip()
    words = _UNIT_WORDS_RE.search(text) if len(text) <= MAX_ANSWER_CHARS else None
    if words and not {w.lower().strip(".") for w in words.group().split()} & _HEDGE_WORDS:
        text = text[: words.start()]
    return text.strip()


def numeric_value(text: str) -> tuple[Fraction, bool, bool] | None:
    """(value, has a decimal point, was a percentage) of a numeric answer, units and signs stripped
    (``strip_units``) and a leading ``x =`` too, or None when what is left is not a plain number (``plain_number``)."""
    value = plain_number(text)
    if value is None and len(text) <= 4 * _MAX_PLAIN_CHARS:
        value = plain_number(strip_units(_ASSIGNMENT_RE.sub("", text, count=1)))
    return None if value is None else (*value, "%" in text)


def numbers_equal(gold: tuple, answer: tuple) -> bool:
    """Equal as math_verify compares numbers; a percentage on one side only also matches its fraction (25% = 0.25)."""
    if _close(gold[:2], answer[:2]):
        return True
    if gold[2] != answer[2]:  # "25\\%" against 0.25: compare the fraction with the percentage / 100
        scaled = ((gold[0] / 100, True), answer[:2]) if gold[2] else (gold[:2], (answer[0] / 100, True))
        return _close(*scaled)
    return False


def _close(gold: tuple[Fraction, bool], answer: tuple[Fraction, bool]) -> bool:
    if gold[1] or answer[1]:  # math_verify: a float on either side -> compare rounded to 6 places
        return round(gold[0], 6) == round(answer[0], 6)
    return gold[0] == answer[0]


def nesting_depth(text: str) -> int:
    """The deepest nesting of (), [] and {} in ``text`` (unbalanced closers are ignored)."""
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}" and depth:
            depth -= 1
    return deepest


def answers_equivalent(gold: str, answer: str, timeout_s: float = 2.0) -> bool | None:
    """True when ``answer`` is mathematically equivalent to ``gold``; None when ``gold`` does not parse.

    Both are final answers (no surrounding prose needed: "\\frac{14}{3}", "x = 5", "27.0"). Numbers are compared
    without their units (``numeric_value``); an answer written as the gold is (up to spacing, ``\\left``/``\\right``
    and ``\\dfrac``) is True without parsing. A timeout, an empty answer, or an answer that is too long or too
    deeply nested is False.
    """
    gold_number = numeric_value(gold)
    answer_number = numeric_value(answer)
    if gold_number is not None and answer_number is not None:
        return numbers_equal(gold_number, answer_number)
    if answer.strip() and normal_form(answer) == normal_form(gold):  # written as the gold is: no parsing needed
        return True
    if gold_number is not None:  # math_verify cannot read "\\$36" or "5.4 cents" in plain text: give it the number
        gold = strip_units(gold)
    if gold_number is not None or _TEXT_WRAP_RE.search(gold):  # "\\frac{270}{7} degrees" for "...\\text{ degrees}"
        answer = strip_unit_words(answer.replace("\\$", ""))  # math_verify drops units only in \\text{}
    if not answer or len(answer) > MAX_ANSWER_CHARS or nesting_depth(answer) > MAX_NESTING:
        if gold_number is not None:
            return False
        answer = ""  # still ask whether the gold parses: None (cannot judge) and False differ
    key = (gold, answer)
    if key in _cache:
        return _cache[key]
    result = _check(gold, answer, timeout_s)
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[key] = result
    return result


def _check(gold: str, answer: str, timeout_s: float) -> bool | None:
    global _worker
    with _lock:
        worker = _get_worker()
        if worker is not None:
            reply = worker.request({"gold": gold, "answer": answer, "timeout": timeout_s}, timeout_s + _GRACE_S)
            if reply is not None:
                return reply.get("r", False)
            logger.warning("math_verify worker gave no answer within %.1fs; restarting it", timeout_s + _GRACE_S)
            worker.close(kill=True)
            _worker = None
            return False
    return _check_in_process(gold, answer, timeout_s)


def _check_in_process(gold: str, answer: str, timeout_s: float) -> bool | None:
    global _warned_unbounded
    if threading.current_thread() is not threading.main_thread() and not _warned_unbounded:
        _warned_unbounded = True
        logger.warning("math_verify runs without a time bound: no worker process, and not in the main thread")
    return _verify_worker.check(gold, answer, timeout_s)[0]


def _get_worker() -> _Worker | None:
    global _worker, _worker_unavailable
    if _worker is not None and (_worker.pid_owner != os.getpid() or _worker.process.poll() is not None):
        _worker = None  # forked child holding the parent's pipes, or the worker died: start our own
    if _worker is None and not _worker_unavailable:
        if os.name != "posix" or not sys.executable or not hasattr(select, "poll"):
            _worker_unavailable = True
            return None
        try:
            _worker = _Worker()
        except (OSError, RuntimeError) as error:
            _worker_unavailable = True
            logger.warning("math_verify worker unavailable (%s); verifying in-process", error)
    return _worker


class _Worker:
    """One ``_verify_worker.py`` process talking JSON lines over pipes."""

    def __init__(self) -> None:
        self.pid_owner = os.getpid()
        self.buffer = b""
        self.process = subprocess.Popen(
            [sys.executable, "-u", _WORKER_PATH],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            close_fds=True,
        )
        self.poller = select.poll()  # not select.select: it fails on descriptors above 1024, common in trainers
        self.poller.register(self.process.stdout.fileno(), select.POLLIN)
        if self._read_line(_STARTUP_S) != b"ready":
            code = self.process.poll()
            self.close()
            raise RuntimeError(f"worker did not start (exit code {code})")

    def request(self, payload: dict, timeout_s: float) -> dict | None:
        try:
            self.process.stdin.write(json.dumps(payload).encode() + b"\n")
            line = self._read_line(timeout_s)
            return json.loads(line) if line is not None else None
        except (OSError, ValueError):
            return None

    def _read_line(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.poller.poll(remaining * 1000):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.strip()

    def close(self, kill: bool = False) -> None:
        if self.pid_owner != os.getpid():
            return
        if kill:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@atexit.register
def _close_worker() -> None:
    if _worker is not None:
        _worker.close()
