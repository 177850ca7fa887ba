"""sft with the shipped recipes' real tokenizers and chat templates (offline hub fixture): whatever a template does
to assistant turns, the tokens trained on hold the trace's thinking, its answer and the turn end, with exactly one
BOS for the families that use one."""

import logging

import pytest

from pipeline.data.schema import trace_row
from pipeline.training import models

ROWS = [trace_row(f"{a}+{b}=?", f"{a} plus {b} makes {a + b}", str(a + b), id=f"r{a}{b}", source="t")
        for a, b in ((1, 2), (25, 36))]


# (hub id, BOS count, loss mode): TRL's patched R1, Qwen3 and Llama 3 templates keep the last turn's thinking, so
# the assistant loss passes the check; Qwen2.5-Math's has no {% generation %} markers and no patched version
CASES = [("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1, "assistant"), ("Qwen/Qwen3-1.7B", 0, "assistant"),
         ("Qwen/Qwen2.5-Math-1.5B", 0, "completion"), ("meta-llama/Llama-3.2-1B", 1, "assistant")]


@pytest.mark.parametrize("hub_id,bos,loss", CASES)
def test_trained_tokens_hold_the_thinking_under_real_templates(offline_hub, tmp_path, hub_id, bos, loss):
    import datasets
    from transformers import AutoTokenizer

    from pipeline.stages.sft import build_trainer
    from pipeline.training.sft_data import render_dataset
    from tests.real_tokenizers import tiny_model

    tok = AutoTokenizer.from_pretrained(hub_id)
    model = tiny_model(tok)
    models.prepare_for_chat(model, tok)
    end = models.turn_end_token(tok) or tok.eos_token
    if end != tok.eos_token:  # a ChatML base model: the recipe sets eos_token (set_turn_end), as the stage does
        models.set_turn_end(model, tok, end)
    data = render_dataset(datasets.Dataset.from_list(ROWS))
    trainer, _, mode, _ = build_trainer(model, tok, data, {"max_steps": 1}, tmp_path, 0, logging.getLogger("t"))
    assert mode == loss
    for row, source in zip(trainer.train_dataset, ROWS):
        trained = tok.decode([t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100])
        assert source["thinking"] in trained and trained.rstrip().endswith(f"{source['answer']}{end}"), trained
        assert "</think>" in trained.split(source["thinking"])[1], trained
        assert row["input_ids"].count(tok.bos_token_id) == bos if tok.bos_token_id is not None else bos == 0
        text = tok.decode(row["input_ids"])
        assert text.count("<think>") <= 1, text  # a prefilled <think> is not written twice
