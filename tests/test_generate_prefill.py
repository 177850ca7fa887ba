"""generate with an R1-Distill template, which opens `<think>\\n` itself: a recipe prefill of "<think>\\n" is not
written twice, and the trace's response holds the opened tag whether the template or the prefill wrote it."""

from types import SimpleNamespace

import pytest

from pipeline.generation import Completion, render_with
from pipeline.generation.prompts import build_units, trace_from_completion
from pipeline.training import models
from tests import real_tokenizers as rt


def _trace(tok, prefill: str):
    backend = SimpleNamespace(wants_messages=False, render=lambda m, add_generation_prompt: render_with(tok, m))
    units, _ = build_units([{"problem": "1+2=?"}], template="{problem}", system_prompt=None, prefill=prefill,
                           id_column=None, backend=backend, chat_template=True)
    done = Completion("one and two make 3\n</think>\nThe answer is 3.", "stop", 10, 12)
    return units[0].prompt, trace_from_completion(units[0], 0, done, teacher="t", sampling={}, passthrough=[])


@pytest.mark.parametrize("prefill", ["", "<think>\n"])
def test_r1_template_prefill_opens_one_think_block(prefill):
    prompt, row = _trace(rt.r1_distill_tokenizer(), prefill)
    assert prompt.endswith("<｜Assistant｜><think>\n") and prompt.count("<think>") == 1, prompt
    assert row["response"] == "<think>\none and two make 3\n</think>\nThe answer is 3."
    assert (row["thinking"], row["answer"]) == ("one and two make 3", "The answer is 3.")


def test_our_template_takes_the_prefill_as_the_response_start():
    prompt, row = _trace(models.build_char_tokenizer(), "<think>\n")
    assert prompt.endswith("<|assistant|>\n<think>\n") and row["response"].startswith("<think>\none and two")
