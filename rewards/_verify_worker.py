"""math_verify behind a deadline: ``check`` for in-process use, and a JSON-lines worker process around it.

Standalone on purpose (stdlib + math_verify only, no package imports): ``rewards.verify`` starts it as
``python _verify_worker.py``, so it does not depend on how the parent was launched or on what it imported (CUDA,
threads, a ``__main__`` without a guard).

Protocol: the worker prints ``ready`` once math_verify is imported, then answers each request line
``{"gold": str, "answer": str, "timeout": float}`` with ``{"r": true | false | null, "timeout": bool}`` (null: the
gold answer does not parse). It exits when its stdin closes, i.e. when the parent goes away.

Inside the worker (its main thread) the deadline is a ``signal.setitimer`` alarm around parse + verify together,
so the common slow cases (sympy simplification, ANTLR backtracking on nested brackets) stop without losing the
process. Code that never returns to the interpreter (one huge C-level integer power) does not see the alarm: the
parent kills the worker after a grace period and starts another. The address space is capped so that a blow-up
fails with MemoryError instead of swapping the machine.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from functools import lru_cache

_MEMORY_LIMIT_BYTES = 4 * 1024**3


class DeadlineExceeded(BaseException):
    """Raised by the alarm; a BaseException so that math_verify's ``except Exception`` cannot swallow it."""


def _as_latex(text: str) -> str:
    # math_verify finds LaTeX by its delimiters; a bare "\dfrac{1}{2}" or "\sqrt{2}" parses to nothing unless boxed.
    # An escaped dollar ("\$36") is a currency sign, not a delimiter.
    delimited = "\\boxed" in text or "$" in text.replace("\\$", "")
    return text if delimited else "\\boxed{" + text + "}"


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    from math_verify import parse

    return parse(_as_latex(gold), parsing_timeout=None)


def _compare(gold: str, answer: str) -> bool | None:
    from math_verify import parse, verify

    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return None
    answer_parsed = parse(_as_latex(answer), parsing_timeout=None)
    if not answer_parsed:
        return False
    return bool(verify(gold_parsed, answer_parsed, timeout_seconds=None))


def _on_alarm(signum, frame):
    raise DeadlineExceeded()


def check(gold: str, answer: str, timeout_s: float) -> tuple[bool | None, bool]:
    """(is answer equivalent to gold, timed out): None when gold does not parse; a timeout counts as not equal.

    In the main thread the whole check runs under a ``setitimer`` alarm of ``timeout_s`` seconds. Elsewhere signals
    are not available and the check runs unbounded: callers off the main thread should use the worker process.
    """
    _quiet_math_verify()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return _compare(gold, answer), False
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    start = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, max(timeout_s, 1e-3))
    try:
        try:
            return _compare(gold, answer), False
        finally:  # the alarm may fire here too, before it is cancelled: the outer except catches that
            signal.setitimer(signal.ITIMER_REAL, 0)
    except DeadlineExceeded:
        return False, True
    finally:
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # someone else's timer was running: give it back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer_delay - (time.monotonic() - start), 1e-3), outer_interval)


def _quiet_math_verify() -> None:
    # We pass parsing_timeout=None / timeout_seconds=None because our own alarm bounds the time (math_verify's
    # alarm(0) would cancel ours). Its one-off "timeout is disabled" warning would then mislead: mark it shown.
    import math_verify.grader
    import math_verify.parser

    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    logging.getLogger("math_verify").setLevel(logging.ERROR)


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; we end when stdin closes
    _limit_memory()
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so that anything a library prints
    # (Python or C) cannot corrupt the reply lines.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    _quiet_math_verify()
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            result, timed_out = check(str(request["gold"]), str(request["answer"]), float(request["timeout"]))
        except BaseException:  # noqa: BLE001 - one bad request must not end the worker
            result, timed_out = False, False
        out.write(json.dumps({"r": result, "timeout": timed_out}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
