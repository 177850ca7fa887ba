"""Thinking budgets with a scripted backend (one character = one token), so every forced tag has an exact place;
and the evaluate stage driven through a recipe with that backend: budget sweep, records, resume."""

import json
import textwrap

import pytest

from pipeline.evaluation.budgets import FORCED_CLOSE, generate_with_budget
from pipeline.generation import Completion, SamplingParams, apply_stop
from pipeline.run import runner
from pipeline.run.recipe import load_recipe

THINKING = "<think>\nabcdefghij"  # 18 characters, then the model closes
AFTER_WAIT = " more"


class ScriptedBackend:
    """Deterministic: thinks THINKING then </think>; after "Wait" thinks AFTER_WAIT then </think>; after a close it
    answers \\boxed{4} when the whole thinking (up to "j") was read, \\boxed{5} when it was cut short."""

    name = "scripted"
    tokenizer = None
    wants_messages = False
    parameters = 1000

    def __init__(self, keep_stop=False, calls=None):
        self.keep_stop, self.calls = keep_stop, calls if calls is not None else []

    def render(self, messages, add_generation_prompt=True):
        return "".join(f"[{m['role']}] {m['content']}\n" for m in messages) + "[assistant]\n"

    def count_tokens(self, text):
        return len(text)

    def _script(self, prompt):
        if prompt.endswith(("</think>", FORCED_CLOSE)):
            thinking = prompt.rpartition("[assistant]\n")[2]
            return (" \\boxed{4}" if "j" in thinking else " \\boxed{5}"), False
        if prompt.endswith("Wait"):
            return AFTER_WAIT + "</think>", True
        return THINKING + "</think> \\boxed{4}", True

    def generate(self, prompts, params, rows=None):
        self.calls.append((list(prompts), params))
        out = []
        for prompt in prompts:
            script, _ = self._script(prompt)
            text, stop = apply_stop(script, params.stop)
            stopped = stop is not None and len(text) < params.max_new_tokens
            text = text[:params.max_new_tokens]
            finish = "stop" if stopped or len(script) <= params.max_new_tokens else "length"
            if stopped and self.keep_stop:
                text += stop
            out.append([Completion(text, finish, len(prompt), len(text), stop if stopped else None)] * params.n)
        return out

    def close(self):
        pass


PARAMS = SamplingParams(n=2, temperature=0.6, top_p=0.95, max_new_tokens=64, seed=0)


@pytest.mark.parametrize("keep_stop", [False, True])
def test_cap_forces_close_exactly_at_the_budget(keep_stop):
    backend = ScriptedBackend(keep_stop=keep_stop)
    (samples,) = generate_with_budget(backend, ["[assistant]\n"], PARAMS, budget=12)
    assert len(samples) == 2
    s = samples[0]
    assert s.text == "<think>\nabcd" + "\n</think>\n" + " \\boxed{5}"  # cut at 12 tokens, forced close
    assert s.forced_close and s.thinking_tokens == 12 and s.completion_tokens == 12 + len(" \\boxed{5}")
    first_call, answer_call = backend.calls
    assert first_call[1].max_new_tokens == 12 and "</think>" in first_call[1].stop
    assert answer_call[0] == ["[assistant]\n<think>\nabcd\n</think>\n"] * 2  # each sample continues its own text


def test_cap_keeps_a_thinking_that_closed_within_the_budget():
    (samples,) = generate_with_budget(ScriptedBackend(), ["[assistant]\n"], PARAMS, budget=100)
    s = samples[0]
    assert s.text == THINKING + "</think>" + " \\boxed{4}"
    assert not s.forced_close and s.thinking_tokens == len(THINKING)


def test_extend_replaces_early_close_with_wait():
    (samples,) = generate_with_budget(ScriptedBackend(), ["[assistant]\n"], PARAMS, budget=100, mode="extend",
                                      wait_extensions=2)
    s = samples[0]
    assert s.text == THINKING + "Wait" + AFTER_WAIT + "Wait" + AFTER_WAIT + "</think>" + " \\boxed{4}"
    assert s.extensions == 2 and not s.forced_close
    # the budget still caps an extended thinking: 18 tokens, "Wait", then only 2 tokens left
    (samples,) = generate_with_budget(ScriptedBackend(), ["[assistant]\n"], PARAMS, budget=20, mode="extend",
                                      wait_extensions=3)
    s = samples[0]
    assert s.text == THINKING + "Wait" + " m" + FORCED_CLOSE + " \\boxed{4}"
    assert s.extensions == 1 and s.forced_close and s.thinking_tokens == 20


RECIPE = """
name: t
run_dir: {run}
stages:
  eval:
    kind: evaluate
    models: [{model_a}, {model_b}]
    model_names: [alpha, beta]
    benchmarks: [{{benchmark: {data}, n: 2, k: [1, 2]}}]
    max_new_tokens: 64
    budgets: [4, 12, 100]
"""


@pytest.fixture
def scripted_recipe(tmp_path, monkeypatch):
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{i}+{4 - i}", "answer": "4"}) + "\n" for i in range(3)))
    path = tmp_path / "r.yaml"
    for name in ("a", "b"):  # the scripted backend loads nothing, but a recipe's local model folders must exist
        (tmp_path / name).mkdir()
    path.write_text(textwrap.dedent(RECIPE.format(run=tmp_path / "run", model_a=tmp_path / "a",
                                                  model_b=tmp_path / "b", data=data)))
    calls = []
    from pipeline.stages import evaluate

    monkeypatch.setattr(evaluate, "_open_backend", lambda cfg, ctx, ref: ScriptedBackend(calls=calls))
    return path, calls


def test_budget_sweep_through_the_stage(scripted_recipe):
    path, _ = scripted_recipe
    recipe = load_recipe(path)
    result = runner.run(recipe)["eval"]
    stage_dir = recipe.run_dir / "eval"
    for name in ("results.md", "results.json", "accuracy.png", "accuracy_vs_length.png", "budget_curve.png"):
        assert (stage_dir / name).stat().st_size > 0, name
    curve = result.metrics["alpha"]["tiny"]["budget_pass@1"]
    assert curve == {"4": 0.0, "12": 0.0, "100": 1.0}  # one point per budget; the cut thinking answers 5
    assert result.metrics["alpha"]["tiny"]["pass@1"] == 1.0
    records = [json.loads(line) for line in (stage_dir / "samples" / "alpha__tiny__budget12.jsonl").open()]
    assert len(records) == 6
    r = records[0]
    assert r["completion"] == "<think>\nabcd\n</think>\n \\boxed{5}" and r["forced_close"]
    assert r["thinking_tokens"] == 12 and r["extracted_answer"] == "5" and r["correct"] is False
    assert r["scores"] == {"accuracy": 0.0, "think_format": 1.0} and r["budget"] == 12
    plain = json.loads((stage_dir / "samples" / "beta__tiny.jsonl").open().readline())
    assert plain["thinking_tokens"] == len(THINKING) and plain["extracted_answer"] == "4" and plain["correct"]
    saved = json.loads((stage_dir / "results.json").read_text())
    assert saved["budgets"]["beta"]["tiny"]["100"]["pass@1"] == 1.0
    table = (stage_dir / "results.md").read_text()
    assert "| alpha | 100.0 ± 0.0 |" in table and "against thinking budget" in table
    ledger_row = json.loads((stage_dir / "metrics.json").read_text())["ledger"]
    assert ledger_row["tokens_generated"] > 0 and ledger_row["params"] == 1000


def test_rerun_reuses_finished_pairs(scripted_recipe):
    path, calls = scripted_recipe
    recipe = load_recipe(path)
    runner.run(recipe)
    first = len(calls)
    stage_dir = recipe.run_dir / "eval"
    # an interruption: no DONE, one pair's file never written
    (stage_dir / "DONE").unlink()
    (stage_dir / "samples" / "beta__tiny__budget12.jsonl").unlink()
    before = (stage_dir / "samples" / "alpha__tiny.jsonl").stat().st_mtime_ns
    runner.run(recipe)
    again = calls[first:]
    assert len(again) == 2  # the thinking call and the answer call of the one missing pair
    assert again[0][1].max_new_tokens == 12
    assert (stage_dir / "samples" / "alpha__tiny.jsonl").stat().st_mtime_ns == before
    assert (stage_dir / "samples" / "beta__tiny__budget12.jsonl").exists() and (stage_dir / "DONE").exists()
