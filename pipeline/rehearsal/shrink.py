"""A real model, shrunk: its own config.json, tokenizer files and generation config, with depth and width cut and
random weights. Only those files are read (from the hub cache, the hub, or a local folder), never weights.

Everything a pipeline can trip over stays real: the vocabulary and its special tokens, the chat template, BOS/EOS
and the generation config's stop tokens, rope settings, tied or untied embeddings, the architecture class. Only the
numbers that set the compute change: layers, hidden size, heads (the real query/key-value ratio is kept) and the
MLP width (the real ratio to the hidden size is kept).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

log = logging.getLogger("reasonforge.rehearsal")

DEFAULT_SIZE = {"layers": 2, "hidden": 64, "heads": 4}
MARKER = "rehearsal_source.json"


def parse_size(text: str | dict | None) -> dict:
    """'2x64' (layers x hidden) or {layers, hidden, heads} -> a full size dict; ValueError with the fix."""
    if text is None:
        return dict(DEFAULT_SIZE)
    if isinstance(text, dict):
        unknown = set(text) - set(DEFAULT_SIZE)
        if unknown:
            raise ValueError(f"unknown rehearsal size key '{min(unknown)}'; valid: {', '.join(DEFAULT_SIZE)}")
        return {**DEFAULT_SIZE, **{k: int(v) for k, v in text.items()}}
    match = re.fullmatch(r"(\d+)x(\d+)", str(text).strip())
    if not match:
        raise ValueError(f"rehearsal size {text!r}: write LAYERSxHIDDEN, e.g. 2x64")
    layers, hidden = int(match[1]), int(match[2])
    if layers < 1 or hidden < 8 or hidden % DEFAULT_SIZE["heads"]:
        raise ValueError(f"rehearsal size {text!r}: need layers >= 1 and a hidden size that is a multiple of 4")
    return {**DEFAULT_SIZE, "layers": layers, "hidden": hidden}


def shrunk_config(config, size: dict):
    """A copy of a transformers config with depth and width cut to `size`; everything else as it was."""
    missing = [a for a in ("num_hidden_layers", "hidden_size", "num_attention_heads") if not hasattr(config, a)]
    if missing:
        raise ValueError(f"cannot shrink a {type(config).__name__}: it has no {missing[0]}")
    small = copy.deepcopy(config)
    heads = size["heads"]
    kv_ratio = max(1, config.num_attention_heads // (getattr(config, "num_key_value_heads", None)
                                                     or config.num_attention_heads))
    mlp_ratio = (getattr(config, "intermediate_size", None) or 4 * config.hidden_size) / config.hidden_size
    small.num_hidden_layers = size["layers"]
    small.hidden_size = size["hidden"]
    small.num_attention_heads = heads
    if hasattr(config, "num_key_value_heads"):
        small.num_key_value_heads = max(1, heads // kv_ratio)
    if hasattr(config, "intermediate_size"):
        small.intermediate_size = round(mlp_ratio * size["hidden"])
    if getattr(config, "head_dim", None):
        small.head_dim = size["hidden"] // heads
    if getattr(config, "layer_types", None):  # per-layer attention kinds (sliding / full) must match the depth
        small.layer_types = list(config.layer_types)[: size["layers"]]
    if getattr(config, "max_window_layers", None) is not None:
        small.max_window_layers = min(config.max_window_layers, size["layers"])
    return small


def full_size_shape(config) -> dict:
    """The full-size model's parameter count and FLOPs shape (pipeline.run.compute.ModelShape), built on the meta
    device: no memory, no weights."""
    import dataclasses

    import torch
    from transformers import AutoModelForCausalLM

    from pipeline.run.compute import shape_of

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {"params_full": sum(p.numel() for p in model.parameters()),
            "shape_full": dataclasses.asdict(shape_of(model))}


def shrink_model(source: str, folder: Path, size: dict, seed: int = 0, trust_remote_code: bool = False) -> dict:
    """Save a shrunk random-init copy of `source` into `folder` (reused when it was made from the same source and
    size) and return what the rehearsal reports about it: the full model's parameter count and architecture."""
    marker = folder / MARKER
    wanted = {"source": source, "size": size, "seed": seed, "format": 2}
    if marker.exists():
        info = json.loads(marker.read_text())
        if {k: info.get(k) for k in wanted} == wanted:
            return info
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from pipeline.run.artifacts import atomic_dir
    from rewards.tokenizer import fresh_tokenizer

    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    tokenizer = fresh_tokenizer(source, trust_remote_code)
    small = shrunk_config(config, size)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(small, trust_remote_code=trust_remote_code)
    model.generation_config = _generation_config(source, model.generation_config)
    info = {**wanted, "folder": str(folder), "architecture": (config.architectures or [type(model).__name__])[0],
            **full_size_shape(config), "params_rehearsal": sum(p.numel() for p in model.parameters()),
            "vocab_size": config.vocab_size, "max_position_embeddings": getattr(config, "max_position_embeddings", None),
            "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
            "layers_full": config.num_hidden_layers, "hidden_full": config.hidden_size,
            "torch_dtype": str(getattr(config, "torch_dtype", None) or getattr(config, "dtype", None))}
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / MARKER).write_text(json.dumps(info, indent=1))
    log.info("rehearsal model %s: %s with %d layers x %d (%.2fM parameters; the real one has %.2fB)", source,
             info["architecture"], size["layers"], size["hidden"], info["params_rehearsal"] / 1e6,
             info["params_full"] / 1e9)
    return info


def _generation_config(source: str, fallback):
    """The model's own generation_config.json (its stop tokens matter); the config-derived one when it ships none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(source)
    except OSError:
        log.info("%s ships no generation_config.json: using the one its config implies", source)
        return fallback
