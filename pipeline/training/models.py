"""Load causal LMs and tokenizers by hub id or path; build tiny offline ones; attach and check the chat template.

The most common failure of distilled models is one that never learns to stop (open-r1 #492, #603): the EOS that
ends an assistant turn in the chat template must be the tokenizer's eos and the generation config's eos. Loading
checks that agreement and says so when it is broken.
"""

from __future__ import annotations

import difflib
import json
import logging
import string

from rewards.tokenizer import fresh_tokenizer

log = logging.getLogger(__name__)

THINK_TOKENS = ["<think>", "</think>"]
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

# Our template for base models that have none. `{% generation %}` marks the assistant turn so that TRL's
# assistant_only_loss trains on exactly that turn; the turn ends with eos_token, which is what teaches stopping.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
# For a family whose tokenizer starts every text with BOS (Llama, Mistral base models were pretrained that way), the
# same layout opening with it: chat text is tokenized without the tokenizer's own special tokens (encode_prompt,
# TRL's apply_chat_template), so the template must write it. Families without a BOS of their own (Qwen, the tiny
# char-level models) get none.
BOS_CHAT_TEMPLATE = "{{ bos_token }}" + CHAT_TEMPLATE

TINY_DEFAULTS = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "intermediate": None, "max_positions": 512}


class EOSMismatchError(ValueError):
    pass


def build_char_tokenizer():
    """A character-level tokenizer over printable ASCII, fully offline, with bos/eos/pad and atomic think tags."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(string.printable)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", padding_side="left")
    tok.add_special_tokens({"additional_special_tokens": ROLE_TOKENS})
    tok.add_tokens(THINK_TOKENS)  # not special: they must survive skip_special_tokens when decoding
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_model(params: dict, tokenizer, seed: int = 0):
    """A random-init LlamaConfig model sized by {layers, hidden, heads, kv_heads, intermediate, max_positions}."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    unknown = set(params) - set(TINY_DEFAULTS) - {"kind", "init"}
    if unknown:
        raise ValueError(f"unknown tiny-model parameter '{min(unknown)}'; valid: {', '.join(TINY_DEFAULTS)}")
    p = {**TINY_DEFAULTS, **{k: v for k, v in params.items() if k in TINY_DEFAULTS}}
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=p["hidden"], num_hidden_layers=p["layers"],
        num_attention_heads=p["heads"], num_key_value_heads=p["kv_heads"],
        intermediate_size=p["intermediate"] or 3 * p["hidden"], max_position_embeddings=p["max_positions"],
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id,
                                               bos_token_id=tokenizer.bos_token_id)
    return model


def load_model_and_tokenizer(source, seed: int = 0, trust_remote_code: bool = False, dtype=None,
                             add_think_tokens: bool = False, check_eos: bool = True, config_overrides=None):
    """(model, tokenizer) from a hub id, a local save_pretrained folder, or a tiny-init parameter dict;
    `config_overrides` are set on the config before the weights load (see load_config)."""
    if isinstance(source, dict):
        if config_overrides:
            raise ValueError("config_overrides applies to a hub id or folder; size a tiny model with its own "
                             "parameters ({init: tiny, max_positions: 1024, ...})")
        tokenizer = build_char_tokenizer()
        return build_tiny_model(source, tokenizer, seed), tokenizer
    from transformers import AutoModelForCausalLM

    tokenizer = fresh_tokenizer(source, trust_remote_code)
    config = load_config(source, config_overrides, trust_remote_code) if config_overrides else None
    model = AutoModelForCausalLM.from_pretrained(source, config=config, trust_remote_code=trust_remote_code,
                                                 dtype=dtype or "auto")
    prepare_for_chat(model, tokenizer, add_think_tokens=add_think_tokens)
    if check_eos:
        check_eos_agreement(tokenizer, model.generation_config, source=str(source))
    return model, tokenizer


def load_config(source, overrides: dict, trust_remote_code: bool = False, **extra):
    """The model's config with `overrides` set (max_position_embeddings, rope_parameters, ...): it then travels with
    the model into save_pretrained. A key the config does not have is a one-line ValueError naming it, since
    transformers would otherwise keep it as an inert attribute (rope_theta under transformers 5 is one)."""
    from transformers import AutoConfig

    config, unused = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code,
                                                return_unused_kwargs=True, **overrides, **extra)
    if unused:
        key = min(unused)
        rope = getattr(config, "rope_parameters", None)
        if isinstance(rope, dict) and key in rope:
            fix = f"it sits inside rope_parameters: write rope_parameters: {json.dumps({**rope, key: unused[key]})}"
        else:
            close = difflib.get_close_matches(key, config.to_dict(), n=1)
            fix = f"did you mean '{close[0]}'?" if close else "use a key of the model's config.json"
        raise ValueError(f"model {source}: config_overrides key '{key}' is not a field of its "
                         f"{type(config).__name__}; {fix}")
    return config


def load_tokenizer(source, trust_remote_code: bool = False):
    if isinstance(source, dict):
        return build_char_tokenizer()
    return fresh_tokenizer(source, trust_remote_code)


def prepare_for_chat(model, tokenizer, add_think_tokens: bool = False) -> None:
    """Make a base model chat-ready: a pad token, our template when it has none, think tokens when asked."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        log.info("the tokenizer has no chat template: attaching ReasonForge's (R1 layout, eos ends the turn)")
        tokenizer.chat_template = chat_template_for(tokenizer)
    if add_think_tokens:
        missing = [t for t in THINK_TOKENS if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_tokens(missing)
            model.resize_token_embeddings(len(tokenizer))
    gen = model.generation_config
    if gen.eos_token_id is None:
        gen.eos_token_id = tokenizer.eos_token_id
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id


def chat_template_for(tokenizer) -> str:
    """Our template for a tokenizer that has none: with a leading BOS when the tokenizer adds one to text itself."""
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [bos]
    return BOS_CHAT_TEMPLATE if adds_bos else CHAT_TEMPLATE


def uses_bos(tokenizer) -> bool:
    """Whether the model family starts every sequence with BOS: the tokenizer has one and either adds it to text by
    itself (Llama, Mistral) or its chat template writes it (DeepSeek, Llama 3). Qwen has no bos: False."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    return "bos_token" in template or tokenizer("a")["input_ids"][:1] == [bos]


def with_one_bos(tokenizer, ids: list[int], bos: bool | None = None) -> list[int]:
    """`ids` starting with exactly one BOS when the family uses one (`bos`, computed when None), untouched
    otherwise: a template that writes BOS plus a tokenizer that adds it would give two, a template without it none."""
    if not (uses_bos(tokenizer) if bos is None else bos):
        return list(ids)
    start = 0
    while start < len(ids) and ids[start] == tokenizer.bos_token_id:
        start += 1
    return [tokenizer.bos_token_id, *ids[start:]]


def encode_prompt(tokenizer, text: str, bos: bool | None = None) -> list[int]:
    """Token ids of a prompt (rendered chat text or raw text) as the model must see it: the text's own tokens,
    with exactly one leading BOS when the family uses one. Every path that tokenizes a prompt goes through here."""
    return with_one_bos(tokenizer, tokenizer(text, add_special_tokens=False)["input_ids"], bos)


def set_turn_end(model, tokenizer, token: str) -> None:
    """Make `token` the eos of the tokenizer and a stop token of the generation config, for base models whose
    template ends turns with a token their generation config does not stop on (Qwen2.5 base: <|im_end|>)."""
    if token not in tokenizer.get_vocab():
        raise ValueError(f"eos_token: {token!r} is not in the tokenizer's vocabulary")
    tokenizer.eos_token = token
    token_id = tokenizer.convert_tokens_to_ids(token)
    stops = [i for i in _as_set(model.generation_config.eos_token_id) if i != token_id]
    model.generation_config.eos_token_id = [token_id, *stops] if stops else token_id


def _as_set(ids) -> set[int]:
    if ids is None:
        return set()
    return set(ids) if isinstance(ids, (list, tuple)) else {ids}


def turn_end_token(tokenizer) -> str | None:
    """The token the chat template puts right after an assistant message (None when it cannot tell)."""
    marker = "XQXQ"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    tail = text.split(marker, 1)[1] if marker in text else ""
    for token in (tokenizer.eos_token, "<|im_end|>", "<|eot_id|>", "<|end|>", "<｜end▁of▁sentence｜>"):
        if token and tail.lstrip().startswith(token):
            return token
    return None


def check_eos_agreement(tokenizer, generation_config, source: str = "model") -> None:
    """Raise EOSMismatchError unless the template's turn-end token stops generation and is the tokenizer's eos."""
    if not tokenizer.chat_template:
        return
    end = turn_end_token(tokenizer)
    if end is None:
        raise EOSMismatchError(f"{source}: the chat template ends an assistant turn with no known end token; "
                               f"end it with {{{{ eos_token }}}} (tokenizer eos is {tokenizer.eos_token!r})")
    end_id = tokenizer.convert_tokens_to_ids(end)
    stops = _as_set(generation_config.eos_token_id)
    if end_id not in stops:
        raise EOSMismatchError(f"{source}: the chat template ends assistant turns with {end!r} (id {end_id}) but "
                               f"generation_config.eos_token_id is {generation_config.eos_token_id}: the model would "
                               f"never stop. Set generation_config.eos_token_id to include {end_id}, or set the "
                               f"stage's eos_token: {end!r}.")
    if end != tokenizer.eos_token:
        raise EOSMismatchError(f"{source}: the chat template ends assistant turns with {end!r} but tokenizer.eos_token "
                               f"is {tokenizer.eos_token!r}; set the stage's eos_token: {end!r} so training adds it.")


def save_model(model, tokenizer, folder) -> None:
    """save_pretrained model + tokenizer (with chat template) + generation config, atomically."""
    from pipeline.run.artifacts import atomic_dir

    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
