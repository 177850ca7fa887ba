"""distill stage: GKD pulls a fresh student towards a trained teacher; tokenizer mismatch and key typos fail clearly."""


import pytest

from pipeline.data.schema import trace_row
from pipeline.run import ledger, runner
from pipeline.run.recipe import RecipeError, load_recipe
from pipeline.training import models
from tests.helpers import write_jsonl, write_recipe

TASKS = "problems: {kind: tasks, task: arithmetic, splits: {train: 72, test: 8}, params: {digits: 1, ops: '+'}}"


def traces_file(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [trace_row(f"{a}+{b}=?", f"{a}+{b}={a + b}", str(a + b), id=f"r{a}{b}", source="t") for a in range(4)
            for b in range(4)]
    return write_jsonl(path, rows)


def test_gkd_lowers_the_students_divergence_from_the_teacher(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = load_recipe(write_recipe(tmp_path, TASKS + """
teach:
  kind: sft
  model: {init: tiny, layers: 2, hidden: 64}
  data: {from: problems, split: train}
  trainer: {max_steps: 60, learning_rate: 3.0e-3, per_device_train_batch_size: 16, disable_tqdm: true}
distill:
  teacher: {from: teach}
  student: {init: tiny, layers: 1, hidden: 32}
  data: {from: problems, split: train}
  eval_data: {from: problems, split: test}
  trainer: {max_steps: 40, learning_rate: 5.0e-3, per_device_train_batch_size: 16, logging_steps: 10,
            lmbda: 0.5, beta: 0.5, max_new_tokens: 24, disable_tqdm: true}
"""))
    m = runner.run(recipe)["distill"].metrics
    assert m["kl_after"] < 0.6 * m["kl_before"] and m["jsd_after"] < 0.6 * m["jsd_before"], m
    assert m["divergence_examples"] == 8 and m["divergence_tokens"] > 8 and m["global_step"] == 40
    assert m["params"] < m["teacher_params"] and m["lmbda"] == 0.5
    folder = tmp_path / "run" / "distill" / "model"
    student = AutoModelForCausalLM.from_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).get_vocab() == models.build_char_tokenizer().get_vocab()
    assert student.config.hidden_size == 32 and (folder.parent / "curves.png").exists()
    row = [a for a in ledger.read_attempts(recipe.run_dir) if a["stage"] == "distill"][-1]
    assert row["status"] == "done" and row["tokens_trained"] == m["tokens"] > 0


def test_different_tokenizers_fail_with_one_clear_line(tmp_path):
    tok = models.build_char_tokenizer()
    tok.add_tokens(["<tool>"])
    models.save_model(models.build_tiny_model({"layers": 1, "hidden": 32}, tok), tok, tmp_path / "teacher")
    path = write_recipe(tmp_path, f"""
distill:
  teacher: {tmp_path / 'teacher'}
  student: {{init: tiny, layers: 1, hidden: 32}}
  data: {traces_file(tmp_path)}
""")
    with pytest.raises(ValueError, match=r"different tokenizers \(110 vs 109 tokens; '<tool>' only in the teacher's"):
        runner.run(load_recipe(path))
    assert not (tmp_path / "run" / "distill" / "checkpoints").exists()


def test_trainer_keys_are_checked_against_gkd_config(tmp_path):
    path = write_recipe(tmp_path, "distill: {teacher: t, student: s, data: d, trainer: {lambda: 0.5}}\n")
    with pytest.raises(RecipeError, match=r"stages\.distill\.trainer\.lambda.*GKDConfig.*'lmbda'"):
        load_recipe(path)


def test_divergence_is_zero_for_a_model_against_itself_and_counts_response_tokens(tiny_model_dir):
    from pipeline.stages.distill import divergence

    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    other = models.build_tiny_model({"layers": 2, "hidden": 32, "heads": 2, "kv_heads": 1}, tok, seed=1)
    chats = [[{"role": "user", "content": "1+2=?"}, {"role": "assistant", "content": "3"}],
             [{"role": "user", "content": "10+20=?"}, {"role": "assistant", "content": "<think>\nx\n</think>\n30"}]]
    same = divergence(model, model, tok, chats)
    assert same["tokens"] == 2 + 9  # "3</s>"; <think> \n x \n </think> \n 3 0 </s>: the prompt is not scored
    assert abs(same["kl"]) < 1e-6 and abs(same["jsd"]) < 1e-6
    apart = divergence(model, other, tok, chats)
    assert apart["kl"] > 0.01 and 0 < apart["jsd"] <= 0.6932  # JSD(0.5) is bounded by ln 2


def _full_divergence(teacher, student, tok, chats):
    """The stage's former computation: full-vocabulary float32 log-softmax of every position's logits at once."""
    import math

    import torch

    from pipeline.stages.distill import _encode

    kl = jsd = count = 0.0
    for messages in chats:
        tokens, first, end = _encode(tok, messages)
        with torch.no_grad():
            t, s = (torch.log_softmax(m(torch.tensor([tokens])).logits[0, :-1].float(), -1) for m in (teacher, student))
        vocab = min(t.shape[-1], s.shape[-1])
        t, s = t[first - 1:end - 1, :vocab], s[first - 1:end - 1, :vocab]
        m = torch.logsumexp(torch.stack([t, s]), dim=0) - math.log(2)
        kl += (t.exp() * (t - s)).sum().item()
        jsd += (0.5 * (t.exp() * (t - m)).sum() + 0.5 * (s.exp() * (s - m)).sum()).item()
        count += end - first
    return {"kl": kl / count, "jsd": jsd / count, "tokens": count}


def test_divergence_in_bounded_blocks_equals_the_full_computation(monkeypatch):
    from pipeline.stages import distill
    from tests import real_tokenizers as rt

    tok = rt.r1_distill_tokenizer()  # a real 129k vocabulary
    teacher, student = rt.tiny_model(tok, hidden=32, seed=0), rt.tiny_model(tok, hidden=16, seed=1)
    student.resize_token_embeddings(len(tok) + 7)  # padded rows past the tokenizer are cut, as before
    chats = [[{"role": "user", "content": "What is 12+30?"},
              {"role": "assistant", "content": "<think>\n12 plus 30 is 42, since 2+0=2 and 1+3=4\n</think>\n42"}],
             [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]]
    widest = []
    original = distill._block_log_probs

    def spy(model, hidden, positions, vocab):
        out = original(model, hidden, positions, vocab)
        widest.append(out.numel())
        return out

    monkeypatch.setattr(distill, "_block_log_probs", spy)
    budget = 4 * len(tok)  # four positions per block
    got = distill.divergence(teacher, student, tok, chats, logit_budget=budget)
    want = _full_divergence(teacher, student, tok, chats)
    assert got["tokens"] == want["tokens"] > 8 and got["blocks"] >= got["tokens"] / 4 > 2
    assert abs(got["kl"] - want["kl"]) <= 1e-4 * want["kl"] and abs(got["jsd"] - want["jsd"]) <= 1e-4 * want["jsd"]
    assert max(widest) <= budget  # no tensor of log-probabilities larger than the budget


def test_gkd_rows_keep_the_thinking_under_an_r1_template():
    """GKD's collator renders bare `messages` through the template, which an R1-Distill template strips of the
    thinking; the stage's rows are tokenized as sft tokenizes them, and the collator trains on all of the reply."""
    import logging

    import datasets

    from pipeline.stages.distill import gkd_classes, training_rows
    from pipeline.training.sft_data import render_dataset
    from tests import real_tokenizers as rt

    gkd_classes()
    from trl.experimental.utils import DataCollatorForChatML

    tok = rt.r1_distill_tokenizer()
    rows = [trace_row(f"{a}+{b}=?", f"{a} plus {b} makes {a + b}", str(a + b), id=f"r{a}", source="t")
            for a, b in ((1, 2), (30, 12))]
    data = training_rows(render_dataset(datasets.Dataset.from_list(rows)), tok, 512, logging.getLogger("test"))
    batch = DataCollatorForChatML(tokenizer=tok, max_length=512)(list(data))
    labeled = [tok.decode([t for t in row.tolist() if t != -100]) for row in batch["labels"]]
    assert labeled == [f"{r['thinking']}\n</think>\n{r['answer']}{rt.EOS}" for r in rows], labeled
    prompts = [tok.decode([t for t in row.tolist() if t != tok.pad_token_id]) for row in batch["prompts"]]
    assert all(p.startswith(rt.BOS) and p.endswith("<｜Assistant｜><think>\n") for p in prompts), prompts
