"""Tiny offline models, the chat template, and the EOS agreement checks."""

import copy

import pytest

from pipeline.training import models


def test_tiny_model_saves_and_reloads_offline(tiny_model_dir):
    import torch

    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    assert tok.padding_side == "left" and tok.eos_token == "</s>"
    assert tok.decode(tok("a b\n7")["input_ids"]) == "a b\n7"
    ids = torch.tensor([tok("12+3=")["input_ids"]])
    fresh, _ = models.load_model_and_tokenizer(str(tiny_model_dir))
    assert torch.equal(model(ids).logits, fresh(ids).logits)


def test_think_tags_are_atomic_and_survive_skip_special_tokens():
    tok = models.build_char_tokenizer()
    tokens = tok.convert_ids_to_tokens(tok("<think>\n1+1=2\n</think>\n2")["input_ids"])
    assert tokens[0] == "<think>" and "</think>" in tokens
    text = tok.decode(tok("<think>x</think>y</s>")["input_ids"], skip_special_tokens=True)
    assert text == "<think>x</think>y"


def test_chat_template_renders_think_and_ends_turn_with_eos():
    tok = models.build_char_tokenizer()
    messages = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "<think>\n1+1=2\n</think>\n2"}]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert "<think>\n1+1=2\n</think>\n2</s>" in text
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n")
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked) == "<think>\n1+1=2\n</think>\n2</s>"


def test_eos_checks_fire_on_mismatch(tiny_model_dir):
    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    models.check_eos_agreement(tok, model.generation_config)
    bad_generation = copy.deepcopy(model.generation_config)
    bad_generation.eos_token_id = tok.convert_tokens_to_ids("a")
    with pytest.raises(models.EOSMismatchError, match="never stop"):
        models.check_eos_agreement(tok, bad_generation)
    other = copy.deepcopy(tok)
    other.chat_template = models.CHAT_TEMPLATE.replace("eos_token", "'<|user|>'")
    with pytest.raises(models.EOSMismatchError):
        models.check_eos_agreement(other, model.generation_config)


def test_base_model_without_template_gets_ours(tiny_model_dir, tmp_path):
    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    tok.chat_template = None
    models.save_model(model, tok, tmp_path / "base")
    _, reloaded = models.load_model_and_tokenizer(str(tmp_path / "base"))
    assert reloaded.chat_template == models.CHAT_TEMPLATE


def test_unknown_tiny_parameter_is_named():
    tok = models.build_char_tokenizer()
    with pytest.raises(ValueError, match="unknown tiny-model parameter 'layerz'"):
        models.build_tiny_model({"layerz": 2}, tok)


def test_set_turn_end_fixes_a_chatml_style_base_model(tiny_model_dir):
    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir))
    tok.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    tok.chat_template = models.CHAT_TEMPLATE.replace("eos_token", "'<|im_end|>'")
    with pytest.raises(models.EOSMismatchError, match="eos_token: '<\\|im_end\\|>'"):
        models.check_eos_agreement(tok, model.generation_config)
    models.set_turn_end(model, tok, "<|im_end|>")
    models.check_eos_agreement(tok, model.generation_config)
    assert tok.eos_token == "<|im_end|>" and 2 in model.generation_config.eos_token_id


def test_config_overrides_apply_before_the_weights_load_and_are_saved(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoConfig

    plain, _ = models.load_model_and_tokenizer(str(tiny_model_dir))
    model, tok = models.load_model_and_tokenizer(str(tiny_model_dir), config_overrides={
        "max_position_embeddings": 2048, "rope_parameters": {"rope_type": "default", "rope_theta": 50000.0}})
    assert model.config.max_position_embeddings == 2048 and plain.config.max_position_embeddings == 512
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), plain.state_dict().values()))
    ids = torch.tensor([tok("12+3=")["input_ids"]])
    assert not torch.allclose(model(ids).logits, plain(ids).logits)  # the new rope base is really used
    models.save_model(model, tok, tmp_path / "long")
    saved = AutoConfig.from_pretrained(tmp_path / "long")
    assert saved.max_position_embeddings == 2048 and saved.rope_parameters["rope_theta"] == 50000.0


@pytest.mark.parametrize("key,hint", [("max_position_embedding", "did you mean 'max_position_embeddings'"),
                                      ("rope_theta", "it sits inside rope_parameters: write rope_parameters: ")])
def test_unknown_config_override_is_one_line_naming_the_key(tiny_model_dir, key, hint):
    with pytest.raises(ValueError) as caught:
        models.load_model_and_tokenizer(str(tiny_model_dir), config_overrides={key: 4096})
    message = str(caught.value)
    assert f"config_overrides key '{key}' is not a field of its LlamaConfig; {hint}" in message
    assert "\n" not in message


def test_config_overrides_parse_in_a_model_reference():
    from pipeline.run.refs import RefError, parse_model_ref

    ref = parse_model_ref({"path": "Qwen/Qwen2.5-Math-1.5B", "config_overrides": {"max_position_embeddings": 32768}})
    assert ref.config_overrides == {"max_position_embeddings": 32768}
    with pytest.raises(RefError, match="config_overrides: expected a mapping"):
        parse_model_ref({"path": "x", "config_overrides": 32768})


def test_generation_and_grpo_loaders_apply_config_overrides(tiny_model_dir, tmp_path):
    from pipeline.generation.hf import TransformersBackend
    from pipeline.run.refs import ModelRef
    from pipeline.stages.grpo import load_policy

    backend = TransformersBackend.create(str(tiny_model_dir), config_overrides={"max_position_embeddings": 1024})
    assert backend.model.config.max_position_embeddings == 1024

    class Ctx:  # what load_policy reads of a StageContext
        seed, stage_dir, is_main_process = 0, tmp_path, True

        @staticmethod
        def resolve_model(ref):
            return ref.path

    ref = ModelRef(path=str(tiny_model_dir), config_overrides={"max_position_embeddings": 2048})
    assert load_policy(ref, Ctx)[0].config.max_position_embeddings == 2048
