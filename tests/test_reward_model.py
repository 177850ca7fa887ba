"""preferences -> reward_model -> grpo with helpfulness {from: rm}: pairs are built, the RM learns, GRPO uses it."""

import json
import random
from pathlib import Path

import pytest

from pipeline.run import runner
from pipeline.run.recipe import RecipeError, load_recipe
from tests.helpers import write_jsonl, write_recipe

KINDS = {1: "wrong", 2: "hedged", 3: "rambling", 4: "unfinished"}


def scored_samples(n_problems: int, seed: int = 0) -> list[dict]:
    """Five samples per addition problem, as a generate stage would leave them (no score column): a correct
    well-formed one, a wrong one (final number perturbed), a hedged one (two boxed answers, one of them right), a
    rambling one (the response said twice, so two think blocks) and an unfinished one (thinking repeated, never
    closed, no answer)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_problems):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        problem, think = f"What is {a}+{b}?", f"{a}+{b} = {a + b}"
        wrong = a + b + rng.choice([-11, -10, -2, -1, 1, 2, 10, 11])
        good = f"<think>\n{think}\n</think>\n{think}, so the answer is \\boxed{{{a + b}}}."
        head = f"<think>\n{think}\n</think>\n{think}, so the answer is "
        responses = [good, head + f"\\boxed{{{wrong}}}.", head + f"\\boxed{{{wrong}}} or \\boxed{{{a + b}}}.",
                     good + "\n" + good, "<think>\n" + f"{think}, let me check again. " * 6]
        for k, response in enumerate(responses):
            messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": response}]
            rows.append({"id": f"p{i}", "sample_index": k, "problem": problem, "gold_answer": str(a + b),
                         "response": response, "thinking": think, "messages": messages})
    return rows


def test_preferences_rm_and_grpo_with_helpfulness_end_to_end(tmp_path, tiny_model_dir):
    samples = scored_samples(100)
    data = write_jsonl(tmp_path / "samples.jsonl", samples)
    stages = f"""\
prefs: {{kind: preferences, data: {data}, max_pairs_per_prompt: 4, test_fraction: 0.2}}
rm:
  kind: reward_model
  model: {tiny_model_dir}
  data: {{from: prefs}}
  trainer: {{num_train_epochs: 4, learning_rate: 3e-3, per_device_train_batch_size: 16, logging_steps: 5}}
rl:
  kind: grpo
  model: {tiny_model_dir}
  data: {data}
  rewards: [{{name: helpfulness, weight: 1.0, model: {{from: rm}}}}, {{name: accuracy, weight: 1.0}}]
  trainer: {{max_steps: 2, num_generations: 4, per_device_train_batch_size: 8, max_completion_length: 8}}
  guardrails: {{action: warn}}
"""
    recipe = load_recipe(write_recipe(tmp_path, stages))
    results = runner.run(recipe)

    import datasets

    pairs = datasets.load_from_disk(results["prefs"].dataset)
    assert set(pairs) == {"train", "test"} and len(pairs["train"]) + len(pairs["test"]) == 400
    train_ids, test_ids = set(pairs["train"]["id"]), set(pairs["test"]["id"])
    assert not train_ids & test_ids and len(test_ids) == 20  # split by problem, not by pair
    row = pairs["train"][0]
    assert row["prompt"] == [{"role": "user", "content": samples[int(row["id"][1:]) * 5]["problem"]}]
    assert "<think>" not in row["chosen"][0]["content"] and row["score_chosen"] == 1.5  # answer part only
    assert row["score_rejected"] <= 1.0

    rm = results["rm"].metrics
    assert rm["pairs_eval"] == 80 and rm["pairs_train"] == 320
    assert rm["eval_pairwise_accuracy"] > 0.8 and rm["eval_pairwise_accuracy"] > rm["eval_pairwise_accuracy_before"]

    # The saved RM, as the helpfulness reward uses it in GRPO (whole responses in, answer part scored), ranks the
    # held-out pairs as the stage measured.
    import rewards

    helpfulness = rewards.build_reward({"name": "helpfulness", "model": results["rm"].model})
    origin = {(s["id"], rewards.text.answer_part(s["response"])): s for s in samples}
    test = pairs["test"].to_list()
    chosen, rejected = ([origin[(r["id"], r[side][0]["content"])] for r in test] for side in ("chosen", "rejected"))
    prompts = [r["prompt"] for r in test]
    wins = [c > x for c, x in zip(helpfulness([s["response"] for s in chosen], prompts=prompts),
                                  helpfulness([s["response"] for s in rejected], prompts=prompts))]
    assert abs(sum(wins) / len(wins) - rm["eval_pairwise_accuracy"]) < 0.05
    by_kind: dict[str, list[bool]] = {}
    for sample, win in zip(rejected, wins):
        by_kind.setdefault(KINDS[sample["sample_index"]], []).append(win)
    rates = {k: sum(v) / len(v) for k, v in by_kind.items()}
    # It learns what shows in the text (hedging, rambling, no answer); a perturbed sum needs arithmetic that a
    # 28k-parameter RM does not learn from 320 pairs, so that kind stays near chance (not asserted).
    assert min(rates["hedged"], rates["rambling"], rates["unfinished"]) > 0.9, rates

    rl = results["rl"].metrics
    assert "rewards/helpfulness/mean" in rl and 0.0 < rl["rewards/helpfulness/mean"] < 1.0
    config = json.loads((recipe.run_dir / "rl" / "config.json").read_text())
    assert config["upstream"]["rm"]  # the GRPO stage depends on the RM stage: retrain the RM, GRPO reruns
    assert (Path(results["rl"].model) / "model.safetensors").exists()


def test_preferences_and_reward_model_config_errors(tmp_path):
    cases = {
        "p: {kind: preferences, data: x.jsonl, completion: full}": r"completion: 'full' is not allowed",
        "p: {kind: preferences, data: x.jsonl, rewards: [{name: acuracy}]}": r"Unknown reward 'acuracy'",
        "p: {kind: preferences, data: x.jsonl, test_fraction: 1.5}": r"test_fraction: must be in \[0, 1\)",
        "p: {kind: reward_model, model: m, data: x.jsonl, trainer: {max_seq_length: 8}}":
            r"trainer.max_seq_length.*use 'max_length'",
    }
    for body, pattern in cases.items():
        with pytest.raises(RecipeError, match=pattern):
            load_recipe(write_recipe(tmp_path, body + "\n"))


def test_preferences_without_a_good_sample_says_what_to_change(tmp_path):
    rows = [r for r in scored_samples(3) if r["sample_index"] != 0]  # every correct sample removed
    data = write_jsonl(tmp_path / "s.jsonl", rows)
    recipe = load_recipe(write_recipe(tmp_path, f"p: {{kind: preferences, data: {data}}}\n"))
    with pytest.raises(ValueError, match=r"no \(chosen, rejected\) pair found among 12 rows.*lower chosen_min_score"):
        runner.run(recipe)


def test_pairs_follow_a_verify_step_when_rows_carry_one():
    from pipeline.run.refs import DataRef
    from pipeline.stages.preferences import PreferencesStage, make_pairs, score_rows

    rows = [{"id": "a", "response": "r0", "score": 0.9, "verified": True},
            {"id": "a", "response": "r1", "score": 0.8, "verified": False},  # gap < margin, but verify said wrong
            {"id": "a", "response": "r2", "score": 0.95, "verified": True},
            {"id": "b", "response": "r3", "score": 0.9, "verified": False},  # no good sample: no pair
            {"id": "b", "response": "r4", "score": 0.1, "verified": False}]
    scores = score_rows(rows, [{"name": "accuracy"}])  # filled scores are kept, not recomputed
    assert scores == [0.9, 0.8, 0.95, 0.9, 0.1]
    cfg = PreferencesStage(data=DataRef(path="x"), max_pairs_per_prompt=5)
    assert sorted(make_pairs(rows, scores, None, cfg, random.Random(0))) == [(0, 1), (2, 1)]
    cfg = PreferencesStage(data=DataRef(path="x"), max_pairs_per_prompt=1)
    assert len(make_pairs(rows, scores, None, cfg, random.Random(0))) == 1


def test_reward_model_from_tiny_init_keeps_backbone_and_holds_out_pairs(tmp_path, tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM
    from trl import RewardTrainer

    from pipeline.stages.reward_model import load_reward_model
    from pipeline.training import models

    causal = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for source, lm in ((str(tiny_model_dir), causal),
                       ({"layers": 1, "hidden": 32}, models.build_tiny_model({"layers": 1, "hidden": 32},
                                                                            models.build_char_tokenizer()))):
        rm, tok = load_reward_model(source)
        assert rm.config.num_labels == 1 and rm.config.pad_token_id == tok.pad_token_id
        assert all(p.equal(q) for p, q in zip(rm.base_model.parameters(), lm.base_model.parameters()))

    pairs = [{"chosen": f"good answer {i}", "rejected": f"bad {i} " * 3} for i in range(40)]
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    stage = (f"rm: {{kind: reward_model, model: {{init: tiny, layers: 1, hidden: 32, heads: 2, kv_heads: 1}}, "
             f"data: {data}, eval_fraction: 0.25, trainer: {{max_steps: 4, per_device_train_batch_size: 8}}}}\n")
    # the final save must be the trainer's own (a collective that gathers ZeRO-3/FSDP shards), not a rank-0 unwrap
    saved = []
    original = RewardTrainer.save_model

    def spy(self, output_dir=None, _internal_call=False):
        if not _internal_call:
            saved.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return original(self, output_dir, _internal_call)

    monkeypatch.setattr(RewardTrainer, "save_model", spy)
    result = runner.run(load_recipe(write_recipe(tmp_path, stage)))["rm"]
    assert result.metrics["pairs_eval"] == 10 and result.metrics["pairs_train"] == 30
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(result.model)
    tok = AutoTokenizer.from_pretrained(result.model)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id is not None
    assert len(saved) == 1 and saved[0].keys() == model.state_dict().keys()
    assert all(saved[0][k].equal(v) for k, v in model.state_dict().items())  # reloads as trained
