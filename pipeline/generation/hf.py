"""The `transformers` backend: `model.generate` on a local or hub model, batched, left-padded, seeded per batch.

Prompts are sorted by length before batching so a batch pads little, and the results are put back in prompt order.
Each batch seeds torch with `params.seed + batch index`, so the same prompts in the same order draw the same
samples. Sampling uses temperature and top_p only (top_k is switched off, as in vLLM and the OpenAI API);
temperature 0 is greedy, and then one sequence is decoded and copied n times. A sequence ends at the first eos
(finish "stop"), at a stop string (transformers' StopStringCriteria ends it early; the text is cut before the stop
string, finish "stop"), or after max_new_tokens (finish "length"). n samples use `num_return_sequences`, which
expands each prompt n times inside generate. Repeating the prompts ourselves is no faster: 3.2M-parameter model,
8 prompts x 4 samples x 64 tokens, 1 CPU thread, medians of 9: 1.30/1.78/1.76 s with num_return_sequences against
1.19/1.56/1.93 s repeated, on a loaded machine (noise either way).
"""

from __future__ import annotations

import logging

from pipeline.generation import Completion, SamplingParams, apply_stop, render_with

log = logging.getLogger(__name__)


class TransformersBackend:
    wants_messages = False

    def __init__(self, model, tokenizer, batch_size: int = 32, name: str | None = None):
        from pipeline.training.models import uses_bos

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size
        # Rendered chat text may hold the template's bos and raw text none: encode_prompt gives one either way.
        self.bos = uses_bos(tokenizer)
        self.name = name or f"transformers:{getattr(model, 'name_or_path', '') or type(model).__name__}"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = _eos_ids(model.generation_config, tokenizer)

    @classmethod
    def create(cls, model, tokenizer=None, trust_remote_code: bool = False, dtype=None, config_overrides=None,
               **options):
        """From objects, or from a path/hub id (loaded with pipeline.training.models, with the model reference's
        config_overrides, moved to cuda when there is one)."""
        if isinstance(model, (str, dict)):
            from pipeline.training import models

            loaded, loaded_tok = models.load_model_and_tokenizer(model, trust_remote_code=trust_remote_code,
                                                                 dtype=dtype, config_overrides=config_overrides)
            options.setdefault("name", f"transformers:{model}" if isinstance(model, str) else "transformers:tiny")
            model, tokenizer = to_best_device(loaded), tokenizer or loaded_tok
        if isinstance(tokenizer, str):
            from pipeline.training.models import load_tokenizer

            tokenizer = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
        if model is None or tokenizer is None:
            raise ValueError("the transformers backend needs model= (object or path) and its tokenizer")
        return cls(model, tokenizer, **options)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return render_with(self.tokenizer, messages, add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: list[str], params: SamplingParams, rows=None) -> list[list[Completion]]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[list[Completion] | None] = [None] * len(prompts)
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            idx = order[start:start + self.batch_size]
            done = self._generate_batch([prompts[i] for i in idx], params, seed=params.seed + b)
            for i, completions in zip(idx, done):
                out[i] = completions
        return out

    def _generate_batch(self, prompts: list[str], params: SamplingParams, seed: int) -> list[list[Completion]]:
        import torch

        from pipeline.training.models import encode_prompt

        ids = [encode_prompt(self.tokenizer, p, self.bos) for p in prompts]
        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, padding_side="left",
                                 return_tensors="pt").to(self.model.device)
        per_prompt = 1 if params.greedy else params.n
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **self._generate_kwargs(params, per_prompt))
        width = enc["input_ids"].shape[1]
        generated = out[:, width:].view(len(prompts), per_prompt, -1).tolist()
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for seqs, prompt_tokens in zip(generated, prompt_lengths):
            completions = [self._completion(ids, int(prompt_tokens), params) for ids in seqs]
            results.append(completions * params.n if per_prompt == 1 else completions)
        return results

    def _generate_kwargs(self, params: SamplingParams, per_prompt: int) -> dict:
        kwargs = {"max_new_tokens": params.max_new_tokens, "num_return_sequences": per_prompt, "use_cache": True,
                  "eos_token_id": sorted(self.eos_ids), "pad_token_id": self.tokenizer.pad_token_id}
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            # top_k=0 switches off the top-k=50 that transformers applies by default, which vLLM does not.
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kwargs

    def _completion(self, ids: list[int], prompt_tokens: int, params: SamplingParams) -> Completion:
        """Cut one generated sequence at its first eos; name why it ended. A sequence that a stop string ended is
        followed by padding (transformers pads finished rows while the batch goes on): not counted as generated."""
        end = next((i for i, t in enumerate(ids) if t in self.eos_ids), len(ids))
        hit_eos = end < len(ids)
        body = ids[:end]
        pad = self.tokenizer.pad_token_id
        while body and body[-1] == pad and not hit_eos:
            body = body[:-1]
        text, stop = apply_stop(self.tokenizer.decode(body, skip_special_tokens=True), params.stop)
        finish = "stop" if hit_eos or stop is not None else "length"
        return Completion(text, finish, prompt_tokens, len(body) + int(hit_eos), stop)

    def close(self) -> None:
        self.model = None


def _eos_ids(generation_config, tokenizer) -> set[int]:
    ids = generation_config.eos_token_id if generation_config.eos_token_id is not None else tokenizer.eos_token_id
    found = set(ids) if isinstance(ids, (list, tuple)) else {ids}
    found.discard(None)
    if not found:
        raise ValueError("the model has no eos token (generation_config.eos_token_id and tokenizer.eos_token are "
                         "both unset): it could never stop; set generation_config.eos_token_id")
    return found


def to_best_device(model):
    import torch

    if torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval()
