"""FLOPs and prices: the formulas behind the ledger's `flops` and `cost_usd`.

FLOPs are model FLOPs (the MFU convention of the PaLM paper, appendix B): the matmuls a forward and backward pass
must do, not what an implementation spends on top (activation recomputation under gradient checkpointing, padding).
A multiply-add is 2 FLOPs. Per token, with N the weights of every matmul (`ModelShape.params`), L layers, d_attn =
attention heads x head dim, and a context of T tokens:

    forward          2N + 4·L·T·d_attn
    forward+backward 3 x forward = 6N + 12·L·T·d_attn

2N is Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", table 1: C_forward = 2N + 2·n_layer·n_ctx·
d_attn). Kaplan's attention term counts the QK^T logits only; the PaLM appendix (6N + 12·L·H·Q·T for training)
and Chinchilla (Hoffmann et al. 2022, appendix F: the logits and the softmax-weighted sum of values, 2·n_ctx·d_attn
each) count the product with V too, which is the 4·L·T·d_attn here. T is the full context of each query (the
whole T x T score matrix, as PaLM counts it and as the attention implementations compute it: the causal mask halves
the useful work, not the matmul). Over sequences of lengths T_i a batch does sum(T_i^2) query-key pairs, so the
`context` to pass for a set of tokens is their token-weighted mean length, sum(T_i^2) / sum(T_i).

Counted: the input embedding is a lookup, not a matmul, so it is out; the output head is a matmul and is in (once
when tied to the embedding); norms, rotary embeddings, softmax and activations are out (a few FLOPs per element,
not per weight). That is what torch.utils.flop_counter.FlopCounterMode counts (tests/test_compute.py checks the
formulas against it on a tiny Llama: one training step and one generation).

Prices: a GPU is priced per GPU-hour, a CPU per core-hour (a CPU-hour at a GPU's rate overstated CPU runs ~40x).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PRICE_PER_GPU_HOUR = 2.0  # USD per GPU-hour: the H800 rental rate behind DeepSeek-V3's headline cost
# USD per CPU core-hour (vCPU): AWS c7i on-demand, us-east-1, 0.0893 USD/h for 2 vCPUs (c7i.large), rounded.
DEFAULT_PRICE_PER_CPU_CORE_HOUR = 0.045


@dataclass(frozen=True)
class Prices:
    """USD per GPU-hour and per CPU core-hour; a recipe sets them with price_per_gpu_hour (alias:
    price_per_device_hour) and price_per_cpu_core_hour."""

    gpu_hour: float = DEFAULT_PRICE_PER_GPU_HOUR
    cpu_core_hour: float = DEFAULT_PRICE_PER_CPU_CORE_HOUR

    def unit(self, device_kind: str) -> tuple[str, float]:
        """(what is billed, USD per hour of it) for a device kind as ledger.detect_devices names it."""
        return ("CPU core", self.cpu_core_hour) if device_kind == "cpu" else ("GPU", self.gpu_hour)


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs formulas need of a model. Without layers/attn_dim (a model known only by its parameter count:
    an API model, an average over several) the attention term is left out."""

    params: int  # weights of every matmul: the linear layers and the output head; the embedding lookup excluded
    layers: int = 0
    attn_dim: int = 0  # query heads x head dim: the width of QK^T and of the attention-weighted values
    head: int = 0  # of `params`, the output head's: generate's prefill runs it on the last prompt token only


def matmul_params(model) -> int:
    """Weights of the model's nn.Linear layers (the output head included, counted once when tied to the input
    embedding); under DeepSpeed ZeRO-3 a sharded weight's full size (ds_numel)."""
    import torch

    seen, total = set(), 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            total += int(getattr(module.weight, "ds_numel", 0) or module.weight.numel())
    return total


def shape_of(model) -> ModelShape:
    """The ModelShape of a transformers causal LM (layers and attention width from its config)."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config  # multimodal configs nest the language model's
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    head_dim = getattr(config, "head_dim", None) or (
        getattr(config, "hidden_size", 0) // heads if heads else 0)
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = getattr(out, "weight", None)
    head = int(getattr(head, "ds_numel", 0) or head.numel()) if head is not None else 0
    return ModelShape(matmul_params(model), layers, heads * int(head_dim), head)


def forward_flops(shape: ModelShape, tokens: float, context: float) -> float:
    """One forward pass over `tokens` tokens whose queries each see `context` keys."""
    return tokens * (2 * shape.params + 4 * shape.layers * context * shape.attn_dim)


def training_flops(shape: ModelShape, tokens: float, context: float) -> float:
    """Forward and backward: the backward pass costs twice the forward (gradients for activations and weights)."""
    return 3 * forward_flops(shape, tokens, context)


def generation_flops(shape: ModelShape, prompt_tokens: float, generated_tokens: float, sequences: int = 0) -> float:
    """Prefill the prompts, then decode with a KV cache. Per sequence of prompt p and g generated tokens: the
    prefill is p tokens over a p-token context with the output head on the last one only (transformers' generate
    keeps one position of logits), then g - 1 decode steps (the last token is never fed back), step i seeing p + i
    keys. With `sequences` the per-sequence means stand in for each sequence's p and g (exact when
    they are equal); without it, every token is one forward with no attention term (2N per token)."""
    if sequences <= 0:
        return forward_flops(ModelShape(shape.params), prompt_tokens + generated_tokens, 0)
    p, g = prompt_tokens / sequences, generated_tokens / sequences
    steps = max(g - 1, 0.0)
    prefill = forward_flops(shape, p, p) - 2 * shape.head * max(p - 1, 0.0)
    decode = forward_flops(shape, steps, p + (steps + 1) / 2)  # mean of p+1 .. p+steps
    return sequences * (prefill + decode)


def work_flops(shape: ModelShape, *, tokens_trained: float = 0, tokens_generated: float = 0,
               tokens_prompt: float = 0, tokens_forward: float = 0, context: float = 0.0, sequences: int = 0,
               teacher: ModelShape | None = None, tokens_teacher: float = 0) -> float:
    """All the FLOPs of one ledger report: trained tokens (forward+backward), forward-only tokens (GRPO's reference
    and old-policy passes) and a teacher's forward tokens (logit distillation) over `context`, and generation."""
    flops = training_flops(shape, tokens_trained, context) + forward_flops(shape, tokens_forward, context)
    if tokens_generated or tokens_prompt:
        flops += generation_flops(shape, tokens_prompt, tokens_generated, sequences)
    if teacher is not None and tokens_teacher:
        flops += forward_flops(teacher, tokens_teacher, context)
    return float(flops)
