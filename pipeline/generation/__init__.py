"""Generation backends behind one interface, shared by the generate and evaluate stages.

A backend takes fully rendered prompt strings (chat template already applied, prefill included) and returns,
for each prompt, `n` completions. Callers that need two-phase generation (thinking budgets) call it twice.

Build one with `make_backend` (heavy imports happen there, not here):

    make_backend("transformers", model=model, tokenizer=tokenizer, batch_size=32)   # objects from ctx.load_model
    make_backend("transformers", model="path/or/hub-id")                            # loads it (cuda when present)
    make_backend("vllm", model="path/or/hub-id", tensor_parallel_size=1, gpu_memory_utilization=0.9, ...)
    make_backend("openai", model="served-name", base_url="http://localhost:8000/v1", api_key_env="OPENAI_API_KEY",
                 chat=False, tokenizer="path/or/hub-id", concurrency=32, timeout_s=600, max_retries=8)
    make_backend("procedural", tokenizer=None)   # the rows' own reference solutions; generate() needs rows=

The interface every backend implements (duck-typed; see pipeline/generation/*.py):
    backend.name -> str                     teacher identity written into every row ("transformers:<model>")
    backend.tokenizer                       for chat templates and token counts (None when it has none)
    backend.wants_messages -> bool          True: generate() takes chat message lists instead of strings
    backend.render(messages, add_generation_prompt=True) -> str
    backend.generate(prompts, params, rows=None) -> list[list[Completion]]   (n per prompt, in prompt order)
    backend.parameters -> int | None        parameter count for the ledger (local models only)
    backend.close()
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

BACKENDS = ("transformers", "vllm", "openai", "procedural")
VLLM_MISSING = ("the vllm backend needs vLLM, which is not installed: pip install 'reasonforge[vllm]' "
                "(it needs a CUDA GPU and pins its own torch and transformers: give it its own environment)")


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 0.6  # 0 means greedy; then the n samples are copies of one
    top_p: float = 0.95
    max_new_tokens: int = 512
    seed: int = 0
    stop: list[str] = field(default_factory=list)  # extra stop strings (eos always stops); removed from the text

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    text: str  # the generated continuation only, special tokens removed (think tags kept)
    finish_reason: str  # "stop" (eos or a stop string) or "length" (hit max_new_tokens)
    prompt_tokens: int | None  # None when the backend cannot count (procedural without a tokenizer)
    completion_tokens: int | None
    stop_reason: str | None = None  # the stop string that ended it (removed from text); None for eos or length


def make_backend(backend: str, model=None, tokenizer=None, **options):
    """A backend by name. `model`: a loaded model object or a path/hub id (transformers), a path/hub id (vllm),
    the served model name (openai), nothing (procedural). `tokenizer`: an object or a path/hub id. `options` are
    the backend's own keyword arguments (see each class); an unknown one raises TypeError naming it."""
    if backend == "transformers":
        from pipeline.generation.hf import TransformersBackend

        return TransformersBackend.create(model, tokenizer, **options)
    if backend == "vllm":
        from pipeline.generation.vllm_backend import VLLMBackend

        return VLLMBackend(model, tokenizer=tokenizer, **options)
    if backend == "openai":
        from pipeline.generation.openai_backend import OpenAIBackend

        return OpenAIBackend(model, tokenizer=tokenizer, **options)
    if backend == "procedural":
        from pipeline.generation.procedural import ProceduralBackend

        return ProceduralBackend(tokenizer=tokenizer, **options)
    raise ValueError(f"unknown backend '{backend}'; use one of: {', '.join(BACKENDS)}")


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def sample_seed(seed: int, prompt, sample_index: int = 0) -> int:
    """A per-(prompt, sample) seed for engines that seed each request: the same work gets the same seed whatever
    the batching, so a resumed run draws what the interrupted one would have drawn."""
    text = prompt if isinstance(prompt, str) else repr(prompt)
    digest = hashlib.sha256(f"{seed}\x00{sample_index}\x00{text}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def apply_stop(text: str, stop: list[str]) -> tuple[str, str | None]:
    """(text cut before the earliest stop string, that string) or (text, None); like vLLM and the OpenAI API,
    the stop string itself is not part of the result."""
    best, found = len(text), None
    for s in stop:
        i = text.find(s) if s else -1
        if 0 <= i < best:
            best, found = i, s
    return text[:best], found


def render_plain(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """ReasonForge's chat layout (pipeline.training.models.CHAT_TEMPLATE) without a tokenizer: `<|role|>\\ncontent\\n`."""
    text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
    return text + ("<|assistant|>\n" if add_generation_prompt else "")


def render_with(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """The tokenizer's chat template applied to `messages` as a string (no tokens)."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return render_plain(messages, add_generation_prompt)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def estimate_parameters(config) -> int | None:
    """Parameters of a dense decoder-only transformer from its HF config (embeddings, attention with grouped kv
    heads, gated MLP, RMS norms): exact for Llama/Qwen-style models without biases. None for mixture-of-experts
    configs and configs without these fields, where a wrong count would make wrong FLOPs."""
    if any(getattr(config, k, None) for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        return None
    try:
        h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
        heads, inter = config.num_attention_heads, config.intermediate_size
    except AttributeError:
        return None
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    attention = 2 * h * heads * head_dim + 2 * h * kv * head_dim  # q, o and k, v projections
    per_layer = attention + 3 * h * inter + 2 * h  # gate/up/down and two norms
    embeddings = vocab * h * (1 if getattr(config, "tie_word_embeddings", False) else 2)
    return layers * per_layer + embeddings + h  # + the final norm
