"""Prompt units: a released dataset's one-row-per-generation layout gives each problem once; a clash is an error."""

from types import SimpleNamespace

import pytest

from pipeline.generation.prompts import build_units

BACKEND = SimpleNamespace(wants_messages=True)


def units(rows):
    return build_units(rows, template="{problem}", system_prompt=None, prefill="", id_column="id", backend=BACKEND,
                       chat_template=True)


def test_rows_repeating_an_id_with_the_same_problem_are_one_prompt():
    # OpenR1-Math-220k adapted: one row per generation, the problem's uuid on each (found by rehearsing
    # recipes/r1-pipeline-full.yaml, whose rs_samples stage failed on the first repeated uuid)
    rows = [{"id": "a", "problem": "1+1"}, {"id": "a", "problem": "1+1"}, {"id": "b", "problem": "2+2"}]
    got, repeats = units(rows)
    assert [u.id for u in got] == ["a", "b"] and repeats == 1


def test_one_id_on_two_different_problems_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'a' to two different prompts"):
        units([{"id": "a", "problem": "1+1"}, {"id": "a", "problem": "2+2"}])
