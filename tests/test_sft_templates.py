"""sft with real tokenizers and real chat templates: the thinking survives an R1-Distill template that strips it,
the turn end is trained, and a BOS-using model family sees exactly one BOS in training and in generation."""

import logging

import pytest

from pipeline.data.schema import trace_row
from pipeline.training import models
from tests import real_tokenizers as rt

ROWS = [trace_row(f"{a}+{b}=?", f"{a} plus {b} makes {a + b}", str(a + b), id=f"r{a}{b}", source="t")
        for a, b in ((1, 2), (3, 4), (25, 36))]


def _trained(model, tok, tmp_path, rows=ROWS, answers_only=False, trainer=None):
    """(loss mode, decoded trained-on tokens per row, input ids per row) of the trainer the sft stage builds."""
    import datasets

    from pipeline.stages.sft import build_trainer
    from pipeline.training.sft_data import render_dataset

    data = render_dataset(datasets.Dataset.from_list(rows), answers_only=answers_only)
    built, _, mode, _ = build_trainer(model, tok, data, {"max_steps": 1, **(trainer or {})}, tmp_path, 0,
                                      logging.getLogger("test"))
    rows_out = list(built.train_dataset)
    labeled = [tok.decode([t for t, lab in zip(r["input_ids"], r["labels"]) if lab != -100]) for r in rows_out]
    return mode, labeled, [r["input_ids"] for r in rows_out]


def test_r1_template_that_strips_thinking_still_trains_on_it(tmp_path, caplog):
    tok = rt.r1_distill_tokenizer()
    model = rt.tiny_model(tok)
    with caplog.at_level(logging.INFO, logger="test"):
        mode, labeled, ids = _trained(model, tok, tmp_path)
    # the prompt ends with the prefilled "<think>\n": the completion is the rest, once, with the turn's eos
    assert labeled == [f"{r['thinking']}\n</think>\n{r['answer']}{rt.EOS}" for r in ROWS], labeled
    texts = [tok.decode(x) for x in ids]
    assert all(t.count("<think>") == 1 and t.endswith(f"<｜Assistant｜><think>\n{lab}") for t, lab in
               zip(texts, labeled)), texts
    assert mode == "completion" and "keeps the thinking" in caplog.text


def test_answers_only_with_an_r1_template_closes_the_prefilled_think(tmp_path):
    tok = rt.r1_distill_tokenizer()
    _, labeled, _ = _trained(rt.tiny_model(tok), tok, tmp_path, answers_only=True)
    assert labeled == [f"</think>\n{r['answer']}{rt.EOS}" for r in ROWS]


def test_check_rendered_example_names_the_template_and_the_fix():
    from pipeline.training.sft_render import check_rendered_example

    tok = rt.r1_distill_tokenizer()
    tok.name_or_path = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    messages = [{"role": "user", "content": "1+2=?"},
                {"role": "assistant", "content": "<think>\nadd one and two\n</think>\n3"}]
    with pytest.raises(ValueError) as caught:
        check_rendered_example(tok, messages, mode="assistant")  # TRL renders the reply through the template
    message = str(caught.value)
    assert "\n" not in message and "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B" in message
    assert "thinking" in message and "completion" in message
    check_rendered_example(tok, messages, mode="completion")  # the stage's own rendering passes


def test_our_template_keeps_assistant_loss_and_checks_it(tiny_model_dir, tmp_path, caplog):
    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    with caplog.at_level(logging.INFO, logger="test"):
        mode, labeled, ids = _trained(model, tok, tmp_path)
    # the char-level tokenizer adds no BOS to text of its own: its family has none, and our template writes none
    assert [x.count(tok.bos_token_id) for x in ids] == [0] * len(ROWS)
    assert mode == "assistant" and labeled == [f"<think>\n{r['thinking']}\n</think>\n{r['answer']}</s>"
                                               for r in ROWS]
    assert "keeps the thinking" in caplog.text


# ---- BOS: exactly one, wherever a prompt is tokenized ----

def _bos_count(ids, tok) -> int:
    return list(ids).count(tok.bos_token_id)


@pytest.mark.parametrize("own_template", [True, False])
def test_llama3_style_family_gets_exactly_one_bos(tmp_path, own_template):
    """A tokenizer whose post-processor adds BOS, with its own BOS-writing template or (a base model) ours."""
    import torch

    from pipeline.generation import SamplingParams, make_backend

    tok = rt.llama3_style_tokenizer()
    if not own_template:
        tok.chat_template = None
    model = rt.tiny_model(tok)
    models.prepare_for_chat(model, tok)
    assert tok("x")["input_ids"][0] == tok.bos_token_id  # the post-processor adds it to any text
    prompt = [{"role": "user", "content": "1+2=?"}]
    rendered = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert _bos_count(models.encode_prompt(tok, rendered), tok) == 1
    assert models.encode_prompt(tok, rendered)[0] == tok.bos_token_id
    # GRPO's path: TRL tokenizes conversational prompts with apply_chat_template, which adds no special tokens
    grpo = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert grpo == models.encode_prompt(tok, rendered)

    _, _, ids = _trained(model, tok, tmp_path)
    assert [_bos_count(x, tok) for x in ids] == [1] * len(ROWS) and all(x[0] == tok.bos_token_id for x in ids)

    seen = []
    original = model.generate

    def spy(**kwargs):
        seen.append(kwargs["input_ids"])
        return original(**kwargs)

    model.generate = spy
    backend = make_backend("transformers", model=model, tokenizer=tok, batch_size=2)
    backend.generate([backend.render(prompt), rendered, "a raw prompt"],
                     SamplingParams(n=1, temperature=0, max_new_tokens=2))
    rows = torch.cat(seen).tolist()
    assert [_bos_count(r, tok) for r in rows] == [1, 1, 1], rows


def test_our_template_writes_the_bos_of_a_bos_family():
    tok = rt.llama3_style_tokenizer()  # a base model: no template, a tokenizer that adds BOS to any text
    tok.chat_template = None
    models.prepare_for_chat(rt.tiny_model(tok), tok)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith(tok.bos_token + "<|user|>") and text.count(tok.bos_token) == 1
    assert _bos_count(models.encode_prompt(tok, text), tok) == 1
    assert _bos_count(models.encode_prompt(tok, "raw text"), tok) == 1


def test_our_template_writes_no_bos_for_a_family_that_adds_none():
    tok = models.build_char_tokenizer()  # has a <s>, but never puts it in front of text: the tiny models' family
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|user|>") and not models.uses_bos(tok)
    assert _bos_count(models.encode_prompt(tok, text), tok) == 0


def test_a_family_without_bos_gets_none():
    tok = rt.r1_distill_tokenizer()
    tok.bos_token = None
    tok.chat_template = models.CHAT_TEMPLATE
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|user|>") and not models.uses_bos(tok)


def test_sft_stage_on_an_r1_distill_model_trains_on_the_thinking(tmp_path):
    """The whole stage, as `reasonforge run` runs it, on a saved model whose template strips the thinking."""
    import json

    from pipeline.run import runner
    from pipeline.run.recipe import load_recipe
    from tests.helpers import write_jsonl, write_recipe

    tok = rt.r1_distill_tokenizer()
    models.save_model(rt.tiny_model(tok), tok, tmp_path / "r1")
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    path = write_recipe(tmp_path, f"sft: {{model: {tmp_path / 'r1'}, data: {data}, "
                                  "trainer: {max_steps: 2, per_device_train_batch_size: 3, disable_tqdm: true}}\n")
    out = runner.run(load_recipe(path))["sft"]
    assert out.metrics["loss_mode"] == "completion" and out.metrics["global_step"] == 2
    log = (tmp_path / "run" / "sft" / "log.txt").read_text()
    reply = len(tok(f"{ROWS[0]['thinking']}\n</think>\n3", add_special_tokens=False)["input_ids"]) + 1  # + eos
    assert f"checked example 0 as it will be trained: completion loss over {reply} of" in log
    assert f"keeps the thinking ({len(ROWS[0]['thinking'])} chars), the answer '3'" in log
    assert json.loads((tmp_path / "run" / "sft" / "model" / "config.json").read_text())["model_type"] == "qwen3"
