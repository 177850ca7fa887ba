"""The report stage's claims: model >= times * other + plus, with the numbers behind each verdict."""

import pytest

from pipeline.run.recipe import RecipeError, load_recipe
from pipeline.stages.report import evaluate_check, render

RESULTS = {"a": {"bench": {"pass@1": 0.50}}, "b": {"bench": {"pass@1": 0.38}}}


def test_claims_use_plus_and_times():
    assert evaluate_check({"model": "a", "at_least": "b", "plus": 0.10}, RESULTS, "bench")["met"] is True
    missed = evaluate_check({"model": "a", "at_least": "b", "plus": 0.15}, RESULTS, "bench")
    assert missed["met"] is False and missed["bound"] == pytest.approx(0.53)
    assert evaluate_check({"model": "b", "at_least": "a", "times": 0.75}, RESULTS, "bench")["met"] is True
    with pytest.raises(ValueError, match="no model 'c'"):
        evaluate_check({"model": "c", "at_least": "a"}, RESULTS, "bench")


def test_summary_markdown_states_each_verdict():
    checks = [evaluate_check({"claim": "a beats b", "model": "a", "at_least": "b", "plus": 0.2}, RESULTS, "bench")]
    text = render({"benchmark": "bench", "models": {m: r["bench"] for m, r in RESULTS.items()}, "checks": checks},
                  "cost table")
    assert "NOT MET: a beats b" in text and "| a | 50.0%" in text and "cost table" in text


def test_bad_check_fails_at_load_time(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: t\nstages:\n  s: {kind: report, evaluation: {from: s}, checks: [{model: a, at_lest: b}]}\n")
    with pytest.raises(RecipeError, match="unknown key 'at_lest'"):
        load_recipe(path)
