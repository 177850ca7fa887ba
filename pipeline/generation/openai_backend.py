"""The `openai` backend: any OpenAI-compatible endpoint (a vLLM or SGLang server, a hosted API).

`chat: false` (the default) posts rendered prompt strings to `/v1/completions`, so the chat template and the
prefill are exactly ours (the tokenizer that renders them is `tokenizer:`, else the model name when it is a local
path or a cached hub id). `chat: true` posts messages to `/v1/chat/completions`; a prefill is then sent as a final
assistant message with vLLM/SGLang's `continue_final_message` (hosted APIs may refuse it), and a reasoning model's
separate `reasoning_content` is put back as `<think>...</think>` before the answer.

One request per sample (n=1) with its own seed derived from (seed, prompt, sample index): token usage is exact per
sample, servers that ignore `n` are fine, and a resumed run redraws what was lost (a vLLM server shares the prompt
across requests with prefix caching). Requests go through rewards.http.Client, the client the LLM judge uses too:
bounded concurrency, retries of 429/408/5xx/timeouts with backoff and Retry-After, other 4xx fail at once. The API
key is read from the environment variable named by `api_key_env` and kept only in the request headers: it is never
logged, returned or written, and cut out of every message (a server may echo it in an error body).
"""

from __future__ import annotations

import json
import logging

from pipeline.generation import Completion, SamplingParams, apply_stop, render_with, sample_seed
from rewards.http import RETRY_STATUS, Client, RequestFailed, bearer_headers, retry_after  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


class OpenAIBackend:
    parameters = None

    def __init__(self, model: str, base_url: str = "http://localhost:8000/v1", api_key_env: str | None = None,
                 chat: bool = False, tokenizer=None, concurrency: int = 32, timeout_s: float = 600.0,
                 max_retries: int = 8, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 extra_body: dict | None = None, transport: str = "auto", name: str | None = None):
        if not model:
            raise ValueError("the openai backend needs model: the name the server serves (e.g. its --served-model-name)")
        self.model, self.chat = str(model), chat
        self.wants_messages = chat
        self.url = base_url.rstrip("/") + ("/chat/completions" if chat else "/completions")
        self.client = Client(self.url, bearer_headers(api_key_env), concurrency=concurrency, timeout_s=timeout_s,
                             max_retries=max_retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                             transport=transport, label="openai backend")
        self.concurrency = concurrency
        self.extra_body = dict(extra_body or {})
        self.name = name or f"openai:{self.model}"
        self.tokenizer = _load_tokenizer(tokenizer, self.model, required=not chat)

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return render_with(self.tokenizer, messages, add_generation_prompt)

    def generate(self, prompts: list, params: SamplingParams, rows=None) -> list[list[Completion]]:
        """`prompts` are strings, or message lists when chat: true (a trailing assistant message is a prefill)."""
        per_prompt = 1 if params.greedy else params.n
        jobs = [(i, j) for i in range(len(prompts)) for j in range(per_prompt)]
        bodies = [self._body(prompts[i], params, sample_seed(params.seed, prompts[i], j)) for i, j in jobs]
        done = self.client.post_all(bodies)
        out: list[list[Completion]] = [[] for _ in prompts]
        for (i, _), response in zip(jobs, done):
            out[i].append(self._completion(response, prompts[i], params))
        return [c * params.n if per_prompt == 1 else c for c in out]

    def _body(self, prompt, params: SamplingParams, seed: int) -> dict:
        body = {"model": self.model, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                "top_p": params.top_p, "n": 1, "seed": seed}
        if params.stop:
            body["stop"] = list(params.stop)
        if self.chat:
            body["messages"] = prompt
            if prompt and prompt[-1]["role"] == "assistant":  # a prefill: continue it instead of a new turn
                body.update(continue_final_message=True, add_generation_prompt=False)
        else:
            body["prompt"] = prompt
        return {**body, **self.extra_body}

    def _completion(self, response: dict, prompt, params: SamplingParams) -> Completion:
        choice = (response.get("choices") or [None])[0]
        if choice is None:
            raise RequestFailed(self.client.redact(f"{self.url} answered without choices: {json.dumps(response)[:300]}"))
        text = choice.get("text") if not self.chat else _chat_text(choice.get("message") or {})
        text, cut = apply_stop(text or "", params.stop)
        usage = response.get("usage") or {}
        prompt_tokens = usage["prompt_tokens"] if "prompt_tokens" in usage else self._count(prompt)
        completion_tokens = usage["completion_tokens"] if "completion_tokens" in usage else self._count(text)
        stop = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else cut
        return Completion(text, choice.get("finish_reason") or "stop", prompt_tokens, completion_tokens, stop)

    def _count(self, text) -> int | None:
        if self.tokenizer is None or not isinstance(text, str):
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        pass


def _chat_text(message: dict) -> str:
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning and "</think>" not in content:
        return f"<think>\n{reasoning.strip()}\n</think>\n{content.strip()}"
    return content


def _load_tokenizer(tokenizer, model: str, required: bool):
    if tokenizer is not None and not isinstance(tokenizer, str):
        return tokenizer
    from pipeline.training.models import load_tokenizer

    source = tokenizer or model
    try:
        return load_tokenizer(source)
    except Exception as error:  # noqa: BLE001 (any loading failure means the same thing here)
        if required or tokenizer:
            raise ValueError(f"the openai backend renders prompts with a tokenizer's chat template and could not "
                             f"load '{source}' ({type(error).__name__}); set options.tokenizer to a local path or "
                             f"cached hub id of the served model's tokenizer, or options.chat: true") from None
        return None  # chat mode: the server renders; token counts then come from usage only
