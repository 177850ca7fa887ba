"""sft stage: a base model with no chat template learns to reason and to stop; resume; answers-only labels; errors."""

import json
import logging
import shutil

import pytest

from pipeline.data.schema import split_response, trace_row
from pipeline.run import ledger, runner
from pipeline.run.recipe import RecipeError, load_recipe
from pipeline.training import models
from tests.helpers import write_jsonl, write_recipe

TASKS = "problems: {kind: tasks, task: arithmetic, splits: {train: 72, test: 8}, params: {digits: 1, ops: '+'}}"


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory):
    """A tiny 'base' model: its tokenizer has no chat template at all."""
    tok = models.build_char_tokenizer()
    tok.chat_template = None
    model = models.build_tiny_model({"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2}, tok, seed=0)
    folder = tmp_path_factory.mktemp("base") / "model"
    models.save_model(model, tok, folder)
    return folder


def greedy(model_dir, problems, max_new_tokens=24, chat_template=None):
    """Greedy replies to chat prompts: (texts, ended_with_eos per reply, widest reply in tokens)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False,
                                       chat_template=chat_template) for p in problems]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)[:, enc["input_ids"].shape[1]:]
    ended = [tok.eos_token_id in row.tolist() for row in out]
    texts = [tok.decode(row, skip_special_tokens=True) for row in out]
    return texts, ended, out.shape[1]


def accuracy(texts, golds) -> float:
    return sum(split_response(t)[1] == g for t, g in zip(texts, golds)) / len(golds)


def test_base_model_without_template_learns_to_reason_and_stop(tmp_path, base_model_dir):
    import datasets
    from transformers import AutoTokenizer

    recipe = load_recipe(write_recipe(tmp_path, TASKS + f"""
sft:
  model: {base_model_dir}
  data: {{from: problems, split: train}}
  trainer: {{max_steps: 300, learning_rate: 3.0e-3, per_device_train_batch_size: 16, lr_scheduler_type: cosine,
            warmup_steps: 10, logging_steps: 25, save_steps: 1000, disable_tqdm: true}}
"""))
    results = runner.run(recipe)
    out = results["sft"]
    test = datasets.load_from_disk(results["problems"].dataset)["test"]
    tok = AutoTokenizer.from_pretrained(out.model)
    assert tok.chat_template == models.CHAT_TEMPLATE  # attached, saved with the model
    before, _, _ = greedy(base_model_dir, test["problem"], chat_template=models.CHAT_TEMPLATE)
    after, ended, width = greedy(out.model, test["problem"])
    base_acc, trained_acc = accuracy(before, test["gold_answer"]), accuracy(after, test["gold_answer"])
    assert trained_acc >= 0.5 and trained_acc >= base_acc + 0.375, (base_acc, trained_acc, after)
    assert all(ended) and width < 24, after  # every reply stopped at eos, well before max_new_tokens
    assert all(t.startswith("<think>\n") and "</think>" in t for t in after)
    m = out.metrics
    assert m["loss_mode"] == "assistant" and m["examples"] == 72 and m["truncated"] == 0 and m["global_step"] == 300
    curves = json.loads((tmp_path / "run" / "sft" / "curves.json").read_text())
    assert curves["loss"][-1][1] < curves["loss"][0][1] / 3 and (tmp_path / "run" / "sft" / "curves.png").exists()
    row = [a for a in ledger.read_attempts(recipe.run_dir) if a["stage"] == "sft"][-1]
    assert row["tokens_trained"] == m["tokens"] > 0 and row["flops"] > 6 * row["params"] * m["tokens"]


def test_rerun_resumes_from_the_last_checkpoint(tmp_path):
    extra = tmp_path / "extra.jsonl"
    long_rows = [trace_row(f"{i}+{i}=?", f"{i}+{i}={2 * i} " + "so " * 10, str(2 * i), id=f"x{i}", source="t")
                 for i in range(3)]
    write_jsonl(extra, long_rows)
    path = write_recipe(tmp_path, TASKS + f"""
sft:
  model: {{init: tiny, layers: 1, hidden: 32}}
  data: [{{from: problems, split: train, weight: 0.5}}, {{path: {extra}, weight: 2}}]
  trainer: {{max_steps: 8, save_steps: 4, per_device_train_batch_size: 8, max_length: 30, learning_rate: 1.0e-3,
            logging_steps: 2, disable_tqdm: true}}
""")
    first = runner.run(load_recipe(path))["sft"]
    stage = tmp_path / "run" / "sft"
    assert first.metrics["start_step"] == 0 and first.metrics["global_step"] == 8
    assert first.metrics["examples"] == 36 + 6 and first.metrics["truncated"] == 6  # mixture: half + twice
    assert "6 longer than max_length=30 will be truncated" in (stage / "log.txt").read_text()
    final = {k: v.clone() for k, v in _weights(stage / "model").items()}
    # what a kill after the step-4 checkpoint leaves behind: no DONE, no model, no later checkpoint
    for leftover in ("DONE", "model", "checkpoints/checkpoint-8"):
        p = stage / leftover
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert runner.plan(load_recipe(path))[-1].reason == "interrupted (no DONE)"
    second = runner.run(load_recipe(path))["sft"]
    assert second.metrics["resumed_from"] == "checkpoint-4" and second.metrics["start_step"] == 4
    assert second.metrics["global_step"] == 8 and "resuming from" in (stage / "log.txt").read_text()
    attempts = [a for a in ledger.read_attempts(tmp_path / "run") if a["stage"] == "sft"]
    assert 0 < attempts[1]["tokens_trained"] < attempts[0]["tokens_trained"]  # only steps 5-8 ran again
    resumed = _weights(stage / "model")
    assert all((resumed[k] - final[k]).abs().max() < 1e-4 for k in final)  # same end point as the unbroken run


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


ROWS = [trace_row(f"{a}+{b}=?", f"{a}+{b}={a + b}", str(a + b), id=f"r{a}{b}", source="t", gold_answer=str(a + b))
        for a, b in ((1, 2), (3, 4), (5, 6))]


def _trainer(tiny_model_dir, tmp_path, answers_only, template=None):
    import datasets

    from pipeline.stages.sft import build_trainer
    from pipeline.training.sft_data import render_dataset

    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    if template:
        tok.chat_template = template
    data = render_dataset(datasets.Dataset.from_list(ROWS), answers_only=answers_only)
    trainer, _, mode, lengths = build_trainer(model, tok, data, {"max_steps": 1}, tmp_path, 0,
                                              logging.getLogger("test"))
    labeled = [tok.decode([t for t, lab in zip(r["input_ids"], r["labels"]) if lab != -100])
               for r in trainer.train_dataset]
    # the length-grouped sampler reads the lengths measured before training instead of re-tokenizing
    assert trainer.args.train_sampling_strategy == "group_by_length"
    assert trainer.train_dataset["length"] == [len(r["input_ids"]) for r in trainer.train_dataset]
    return data, mode, labeled, lengths


@pytest.mark.parametrize("answers_only", [True, False])
def test_loss_covers_exactly_the_assistant_turn(tiny_model_dir, tmp_path, answers_only):
    data, mode, labeled, lengths = _trainer(tiny_model_dir, tmp_path, answers_only)
    assert mode == "assistant" and lengths["examples"] == 3
    replies = [m[-1]["content"] for m in data["messages"]]
    if answers_only:
        assert replies == ["3", "7", "11"] and not any("think>" in r for r in replies)
        assert labeled == ["3</s>", "7</s>", "11</s>"]  # the answer and the eos, nothing of the prompt
    else:
        assert labeled == [f"<think>\n{r['thinking']}\n</think>\n{r['answer']}</s>" for r in ROWS]


def test_template_without_generation_markers_falls_back_to_completion_loss(tiny_model_dir, tmp_path, caplog):
    plain = models.CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    with caplog.at_level(logging.WARNING, logger="test"):
        _, mode, labeled, _ = _trainer(tiny_model_dir, tmp_path, True, template=plain)
    assert mode == "completion" and "completion-only loss" in caplog.text
    assert [x.split("</s>")[0] for x in labeled] == ["3", "7", "11"] and all("</s>" in x for x in labeled)


def test_eos_mismatch_stops_before_training(tmp_path, tiny_model_dir):
    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    model.generation_config.eos_token_id = tok.pad_token_id  # generation would never stop at the turn's </s>
    models.save_model(model, tok, tmp_path / "bad")
    data = tmp_path / "d.jsonl"
    write_jsonl(data, ROWS)
    path = write_recipe(tmp_path, f"sft: {{model: {tmp_path / 'bad'}, data: {data}, trainer: {{max_steps: 1}}}}\n")
    with pytest.raises(models.EOSMismatchError, match="generation_config.eos_token_id"):
        runner.run(load_recipe(path))
    assert not (tmp_path / "run" / "sft" / "checkpoints").exists()


def test_recipe_errors_name_the_key(tmp_path):
    with pytest.raises(RecipeError, match=r"stages\.sft\.trainer\.max_seq_length.*use 'max_length'"):
        load_recipe(write_recipe(tmp_path, "sft: {model: m, data: d, trainer: {max_seq_length: 64}}\n"))
    with pytest.raises(RecipeError, match=r"data\[1\]\.weight: expected a number > 0"):
        load_recipe(write_recipe(tmp_path, "sft: {model: m, data: [d, {path: e, weight: 0}]}\n"))


def test_mixture_samples_each_dataset_by_weight():
    import datasets

    from pipeline.training.sft_data import mix

    a = datasets.Dataset.from_list([{"messages": [], "src": f"a{i}"} for i in range(10)])
    b = datasets.Dataset.from_list([{"messages": [], "src": f"b{i}"} for i in range(4)])
    mixed = mix([a, b], [0.5, 2.0], seed=0)
    names = mixed["src"]
    assert len(names) == 5 + 8 and sum(n.startswith("a") for n in names) == 5
    assert all(names.count(f"b{i}") == 2 for i in range(4))
    assert mix([a, b], [0.5, 2.0], seed=0)["src"] == names and mix([a, b], [0.5, 2.0], seed=1)["src"] != names


def test_length_grouping_cuts_padding():
    import random

    from transformers.trainer_pt_utils import LengthGroupedSampler

    from pipeline.training.sft_data import padding_fraction

    rng = random.Random(0)
    lengths = [rng.choice([25, 90, 260]) + rng.randint(0, 10) for _ in range(512)]
    grouped = list(LengthGroupedSampler(32, lengths=lengths))
    shuffled = rng.sample(range(512), 512)
    assert padding_fraction(lengths, grouped, 32) < 0.5 * padding_fraction(lengths, shuffled, 32)


def test_max_length_past_the_models_positions_stops_and_config_overrides_lift_it(tmp_path, tiny_model_dir):
    from transformers import AutoConfig

    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    trainer = "{max_steps: 1, max_length: 600, disable_tqdm: true}"
    path = write_recipe(tmp_path, f"sft: {{model: {tiny_model_dir}, data: {data}, trainer: {trainer}}}\n")
    with pytest.raises(ValueError, match=r"max_length 600 is more than the model's max_position_embeddings 512; .*"
                                         r"config_overrides: \{max_position_embeddings: 600\}"):
        runner.run(load_recipe(path))
    assert not (tmp_path / "run" / "sft" / "checkpoints").exists()
    model = f"{{path: {tiny_model_dir}, config_overrides: {{max_position_embeddings: 1024}}}}"
    path = write_recipe(tmp_path, f"sft: {{model: {model}, data: {data}, trainer: {trainer}}}\n")
    out = runner.run(load_recipe(path))["sft"]
    assert AutoConfig.from_pretrained(out.model).max_position_embeddings == 1024  # saved with the model
