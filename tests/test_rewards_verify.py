"""rewards.verify: the plain-number fast path agrees with math_verify, and every check is bounded in time."""

import logging
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import verify
from rewards._verify_worker import check
from rewards.verify import answers_equivalent, gold_text, nesting_depth, plain_number

PATHOLOGICAL = ["9^{9^{9^{9}}}", "10^{10^{10}}", "2^{2^{30}}", "(" * 14 + "x+1" + ")" * 14]


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(verify, "_cache", {})


@pytest.mark.parametrize(
    ("gold", "expected"),
    [("42", "42"), (" 42 ", "42"), ("rationale\n#### 18", "18"), ("a #### b #### 1,000", "1,000"), (7, "7"),
     (27.0, "27.0"), (None, None), ("", None), ("####", None), (True, None)],
)
def test_gold_text(gold, expected):
    assert gold_text(gold) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", (42, False)), ("-7", (-7, False)), ("27.0", (27, True)), ("1,234", (1234, False)), ("$5$", (5, False)),
     ("1{,}000", (1000, False)), ("3.", (3, False)), ("1\\,000", (1000, False)), ("1 000", (1000, False)), ("1 2", None), ("3, 4", None), ("1,23", None),
     ("\\frac{1}{2}", None), ("5 dollars", None), ("", None), ("1e5", None), ("9" * 100, None)],
)
def test_plain_number(text, expected):
    assert plain_number(text) == expected


def test_nesting_depth():
    assert nesting_depth("") == 0
    assert nesting_depth("\\frac{1}{(2)}") == 2
    assert nesting_depth(")))(((") == 3


numbers = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.decimals(-1000, 1000, places=3, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["27.0", "27", "0.5", "0.500000", "1,234", "-0", "0.333333", "0.3333333", "1.0000001"]),
)


@settings(max_examples=120, derandomize=True, database=None, deadline=None)
@given(numbers, numbers)
def test_fast_path_agrees_with_math_verify(gold, answer):
    """The plain-number shortcut must give math_verify's verdict, or it would change what GRPO rewards."""
    assert plain_number(gold) is not None and plain_number(answer) is not None
    assert answers_equivalent(gold, answer) == check(gold, answer, 5.0)[0]
    assert answers_equivalent(gold, gold) is True


@pytest.mark.parametrize(("gold", "answer"), [("\\frac{14}{3}", "\\dfrac{14}{3}"), ("0.5", "\\frac{1}{2}"),
                                              ("\\sqrt{2}", "2^{1/2}"), ("x=5", "5")])
def test_slow_path_equivalences(gold, answer):
    assert answers_equivalent(gold, answer) is True


@pytest.mark.parametrize("answer", PATHOLOGICAL)
def test_worker_bounds_each_check(answer, fresh_cache):
    start = time.monotonic()
    assert answers_equivalent("\\frac{1}{2}", answer, timeout_s=0.3) is False
    assert time.monotonic() - start < 0.3 + verify._GRACE_S + 0.5
    assert answers_equivalent("\\frac{1}{2}", "0.5", timeout_s=0.3) is True  # still serving


def test_deep_or_long_answers_are_not_parsed(monkeypatch, fresh_cache):
    calls = []
    monkeypatch.setattr(verify, "_check", lambda gold, answer, timeout_s: calls.append(answer) or False)
    assert answers_equivalent("\\frac{1}{2}", "(" * 40 + "1/2" + ")" * 40) is False
    assert answers_equivalent("\\frac{1}{2}", "1/2+" * 400) is False
    assert calls == [""]  # only whether the gold parses (None vs False) is asked, once: then it is cached
    assert answers_equivalent("4", "(" * 40) is False  # a plain-number gold needs no check at all
    assert calls == [""]


HUNG_WORKER = """
import signal, sys, time
signal.signal(signal.SIGALRM, signal.SIG_IGN)  # like C code that never returns to the interpreter
print("ready", flush=True)
for line in sys.stdin:
    time.sleep(600)
"""


def test_hung_worker_is_killed_and_replaced(tmp_path, monkeypatch, fresh_cache):
    script = tmp_path / "hung_worker.py"
    script.write_text(HUNG_WORKER)
    monkeypatch.setattr(verify, "_worker", None)
    monkeypatch.setattr(verify, "_WORKER_PATH", str(script))
    monkeypatch.setattr(verify, "_GRACE_S", 0.2)
    hung = verify._get_worker()
    start = time.monotonic()
    assert answers_equivalent("\\frac{1}{2}", "\\frac{2}{4}", timeout_s=0.2) is False
    assert time.monotonic() - start < 2.0
    assert hung.process.wait(timeout=5) is not None  # killed
    assert verify._worker is None  # the next call starts a new one
    monkeypatch.setattr(verify, "_WORKER_PATH", str(verify.Path(verify.__file__).with_name("_verify_worker.py")))
    assert answers_equivalent("\\frac{1}{2}", "\\frac{3}{6}", timeout_s=2.0) is True
    verify._worker.close()


def test_in_process_fallback_is_bounded_in_the_main_thread(monkeypatch, fresh_cache):
    monkeypatch.setattr(verify, "_worker", None)
    monkeypatch.setattr(verify, "_worker_unavailable", True)
    start = time.monotonic()
    assert answers_equivalent("\\frac{1}{2}", "2^{2^{30}}", timeout_s=0.3) is False
    assert time.monotonic() - start < 1.5
    assert answers_equivalent("\\frac{1}{2}", "\\frac{3}{6}") is True


def test_in_process_fallback_off_the_main_thread_warns(monkeypatch, caplog, fresh_cache):
    monkeypatch.setattr(verify, "_worker", None)
    monkeypatch.setattr(verify, "_worker_unavailable", True)
    monkeypatch.setattr(verify, "_warned_unbounded", False)
    results = []
    with caplog.at_level(logging.WARNING, logger="rewards.verify"):
        thread = threading.Thread(target=lambda: results.append(answers_equivalent("\\frac{1}{2}", "\\frac{4}{8}")))
        thread.start()
        thread.join()
    assert results == [True]
    assert "without a time bound" in caplog.text


def test_worker_answers_other_threads_within_the_bound(fresh_cache):
    results = []

    def work():
        results.append(answers_equivalent("\\frac{1}{2}", "10^{10^{10}}", timeout_s=0.3))
        results.append(answers_equivalent("\\frac{1}{2}", "\\frac{5}{10}", timeout_s=2.0))

    start = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, True, True]
    assert time.monotonic() - start < 2 * (0.3 + verify._GRACE_S) + 1.0


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_forked_child_starts_its_own_worker(fresh_cache):
    import os

    assert answers_equivalent("\\frac{1}{2}", "\\frac{2}{4}") is True  # parent has a worker
    parent_worker = verify._worker
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not talk over the parent's pipes
        verify._cache.clear()
        ok = answers_equivalent("\\frac{1}{3}", "\\frac{2}{6}") is True and verify._worker is not parent_worker
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    verify._cache.clear()
    assert answers_equivalent("\\frac{1}{4}", "\\frac{2}{8}") is True and verify._worker is parent_worker


@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="0123456789x+-*/^{}()[]\\frac sqrt.,=", max_size=60))
def test_random_latex_answers_are_bool_within_the_bound(answer):
    start = time.monotonic()
    assert answers_equivalent("\\frac{14}{3}", answer, timeout_s=0.3) in (True, False)
    assert time.monotonic() - start < 0.3 + verify._GRACE_S + 0.5
