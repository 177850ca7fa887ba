"""The `vllm` backend: vLLM's offline engine (`vllm.LLM` + `vllm.SamplingParams`), imported only when used.

vLLM is an optional extra (`pip install 'reasonforge[vllm]'`): its wheels pin their own torch and transformers, so
it lives in its own environment (TRL-ON-CPU.md). Prompts are tokenized here (`pipeline.training.models.encode_prompt`) and
handed over as token ids, so each starts with exactly one bos, never two (template + tokenizer) nor none (raw text).
Every request gets its own seed derived from (seed, prompt), so a resumed run redraws exactly what was lost
whatever the batching; vLLM schedules and batches the whole list itself (continuous batching, prefix caching
shares the prompt across the n samples).
"""

from __future__ import annotations

from pipeline.generation import (
    VLLM_MISSING,
    Completion,
    SamplingParams,
    apply_stop,
    estimate_parameters,
    render_with,
    sample_seed,
)
from pipeline.training.models import encode_prompt, uses_bos


class VLLMBackend:
    wants_messages = False

    def __init__(self, model: str, tokenizer: str | None = None, seed: int = 0, trust_remote_code: bool = False,
                 name: str | None = None, **engine_options):
        """`engine_options` go to `vllm.LLM` unchanged: tensor_parallel_size, gpu_memory_utilization, dtype,
        max_model_len, enforce_eager, enable_prefix_caching, ..."""
        try:
            import vllm
        except ImportError as error:
            raise ImportError(VLLM_MISSING) from error
        if not isinstance(model, str) or not model:
            raise ValueError("the vllm backend needs a saved model: a hub id or a save_pretrained folder "
                             "(a {init: tiny} model exists only in memory; save it with an sft stage first)")
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, tokenizer=tokenizer, seed=seed, trust_remote_code=trust_remote_code,
                            **engine_options)
        self.tokenizer = self.llm.get_tokenizer()
        self.bos = uses_bos(self.tokenizer)  # encode_prompt: one BOS for rendered and raw prompts alike
        self.name = name or f"vllm:{model}"
        self._parameters = _count_parameters(self.llm)

    @property
    def parameters(self) -> int | None:
        return self._parameters

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return render_with(self.tokenizer, messages, add_generation_prompt)

    def generate(self, prompts: list[str], params: SamplingParams, rows=None) -> list[list[Completion]]:
        per_prompt = 1 if params.greedy else params.n
        inputs = [{"prompt_token_ids": encode_prompt(self.tokenizer, p, self.bos)} for p in prompts]
        sampling = [self._vllm.SamplingParams(
            n=per_prompt, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
            seed=sample_seed(params.seed, p), stop=list(params.stop) or None, skip_special_tokens=True,
        ) for p in prompts]
        outputs = self.llm.generate(inputs, sampling, use_tqdm=False)
        results = []
        for request in outputs:
            prompt_tokens = len(request.prompt_token_ids or [])
            samples = sorted(request.outputs, key=lambda o: o.index)
            completions = [_completion(o, prompt_tokens, params) for o in samples]
            results.append(completions * params.n if per_prompt == 1 else completions)
        return results

    def close(self) -> None:
        self.llm = None


def _completion(output, prompt_tokens: int, params: SamplingParams) -> Completion:
    # vLLM reports "stop" for eos and stop strings alike, with the stop string (or stop token id) in stop_reason.
    text, cut = apply_stop(output.text, params.stop)  # a no-op unless vLLM kept the stop string
    stop = output.stop_reason if isinstance(output.stop_reason, str) else cut
    finish = output.finish_reason or "length"
    return Completion(text, finish, prompt_tokens, len(output.token_ids), stop)


def _count_parameters(llm) -> int | None:
    """The model's parameter count estimated from the HF config vLLM loaded (None when it cannot tell: the ledger
    then has no FLOPs for this stage rather than a made-up figure)."""
    try:
        config = llm.llm_engine.model_config.hf_config
    except AttributeError:
        return None
    return estimate_parameters(config)
