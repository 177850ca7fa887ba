"""The `openai` backend: any OpenAI-compatible endpoint (a vLLM or SGLang server, a hosted API).

`chat: false` (the default) posts rendered prompt strings to `/v1/completions`, so the chat template and the
prefill are exactly ours (the tokenizer that renders them is `tokenizer:`, else the model name when it is a local
path or a cached hub id). `chat: true` posts messages to `/v1/chat/completions`; a prefill is then sent as a final
assistant message with vLLM/SGLang's `continue_final_message` (hosted APIs may refuse it), and a reasoning model's
separate `reasoning_content` is put back as `<think>...</think>` before the answer.

One request per sample (n=1) with its own seed derived from (seed, prompt, sample index): token usage is exact per
sample, servers that ignore `n` are fine, and a resumed run redraws what was lost (a vLLM server shares the prompt
across requests with prefix caching). Requests run concurrently (asyncio, at most `concurrency` in flight) over
httpx when it is installed, else urllib in a thread pool. 429, 408, 5xx, timeouts and connection errors are
retried with exponential backoff and full jitter, waiting at least Retry-After when the server sends it; other
4xx fail at once with the server's message. The API key is read from the environment variable named by
`api_key_env` and kept only in the request headers: it is never logged, returned or written.
"""

from __future__ import annotations

import asyncio
import email.utils
import http.client
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from pipeline.generation import Completion, SamplingParams, apply_stop, render_with, sample_seed

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 600.0


class RequestFailed(RuntimeError):
    pass


class OpenAIBackend:
    parameters = None

    def __init__(self, model: str, base_url: str = "http://localhost:8000/v1", api_key_env: str | None = None,
                 chat: bool = False, tokenizer=None, concurrency: int = 32, timeout_s: float = 600.0,
                 max_retries: int = 8, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 extra_body: dict | None = None, transport: str = "auto", name: str | None = None):
        if not model:
            raise ValueError("the openai backend needs model: the name the server serves (e.g. its --served-model-name)")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("options: concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
        self.model, self.chat = str(model), chat
        self.wants_messages = chat
        self.url = base_url.rstrip("/") + ("/chat/completions" if chat else "/completions")
        self.concurrency, self.timeout_s, self.max_retries = concurrency, timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.extra_body = dict(extra_body or {})
        self.name = name or f"openai:{self.model}"
        self._headers = {"Content-Type": "application/json", **_auth_header(api_key_env)}
        self._transport = _pick_transport(transport)
        self.tokenizer = _load_tokenizer(tokenizer, self.model, required=not chat)

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return render_with(self.tokenizer, messages, add_generation_prompt)

    def generate(self, prompts: list, params: SamplingParams, rows=None) -> list[list[Completion]]:
        """`prompts` are strings, or message lists when chat: true (a trailing assistant message is a prefill)."""
        per_prompt = 1 if params.greedy else params.n
        jobs = [(i, j) for i in range(len(prompts)) for j in range(per_prompt)]
        bodies = [self._body(prompts[i], params, sample_seed(params.seed, prompts[i], j)) for i, j in jobs]
        done = asyncio.run(self._post_all(bodies))
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
            raise RequestFailed(f"{self.url} answered without choices: {json.dumps(response)[:300]}")
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

    async def _post_all(self, bodies: list[dict]) -> list[dict]:
        gate = asyncio.Semaphore(self.concurrency)
        async with self._transport(self.concurrency, self.timeout_s) as transport:
            async def one(body):
                async with gate:
                    return await self._post_with_retries(transport, body)

            results = await asyncio.gather(*(one(b) for b in bodies), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return results

    async def _post_with_retries(self, transport, body: dict) -> dict:
        payload = json.dumps(body).encode()
        for attempt in range(self.max_retries + 1):
            wait, problem = None, None
            try:
                status, headers, data = await transport.post(self.url, payload, self._headers)
            except transport.errors as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if status == 200:
                    try:
                        return json.loads(data)
                    except ValueError:
                        problem = f"status 200 with a body that is not JSON: {data[:200]!r}"
                elif status in RETRY_STATUS:
                    problem, wait = f"status {status}: {_excerpt(data)}", retry_after(headers)
                else:
                    raise RequestFailed(f"{self.url} refused the request with status {status}: {_excerpt(data)}"
                                        + (" (check the key in the api_key_env variable)" if status == 401 else ""))
            if attempt == self.max_retries:
                break
            delay = wait if wait is not None else self._backoff(attempt)
            log.warning("openai backend: %s; retry %d/%d in %.1f s", problem, attempt + 1, self.max_retries, delay)
            await asyncio.sleep(delay)
        raise RequestFailed(f"{self.url}: giving up after {self.max_retries + 1} attempts; last: {problem}")

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)], so clients that failed together spread out."""
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))

    def close(self) -> None:
        pass


def retry_after(headers) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped at 10 minutes."""
    value = next((v for k, v in dict(headers or {}).items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _chat_text(message: dict) -> str:
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning and "</think>" not in content:
        return f"<think>\n{reasoning.strip()}\n</think>\n{content.strip()}"
    return content


def _excerpt(data: bytes) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return " ".join(text.split())[:300]


def _auth_header(api_key_env: str | None) -> dict:
    if not api_key_env:
        return {}
    key = os.environ.get(api_key_env)
    if not key:
        raise ValueError(f"options.api_key_env: the environment variable {api_key_env} is not set or empty; "
                         f"export {api_key_env}=... before running (the key is never written to the recipe)")
    return {"Authorization": f"Bearer {key}"}


def _load_tokenizer(tokenizer, model: str, required: bool):
    if tokenizer is not None and not isinstance(tokenizer, str):
        return tokenizer
    from pipeline.models import load_tokenizer

    source = tokenizer or model
    try:
        return load_tokenizer(source)
    except Exception as error:  # noqa: BLE001 (any loading failure means the same thing here)
        if required or tokenizer:
            raise ValueError(f"the openai backend renders prompts with a tokenizer's chat template and could not "
                             f"load '{source}' ({type(error).__name__}); set options.tokenizer to a local path or "
                             f"cached hub id of the served model's tokenizer, or options.chat: true") from None
        return None  # chat mode: the server renders; token counts then come from usage only


# ---- transports: post(url, payload, headers) -> (status, headers, body bytes); network errors raise `errors` ----

NETWORK_ERRORS = (OSError, http.client.HTTPException)  # OSError covers timeouts, refused/reset connections, URLError


def _pick_transport(name: str):
    if name not in ("auto", "httpx", "urllib"):
        raise ValueError(f"options.transport: '{name}' is not one of auto, httpx, urllib")
    if name in ("auto", "httpx"):
        try:
            import httpx  # noqa: F401
        except ImportError:
            if name == "httpx":
                raise ImportError("options.transport: httpx is not installed; pip install httpx or use urllib") from None
        else:
            return _HttpxTransport
    return _UrllibTransport


class _UrllibTransport:
    """urllib in a thread pool as wide as the concurrency (asyncio's default pool has only cpu+4 threads)."""

    errors = NETWORK_ERRORS

    def __init__(self, concurrency: int, timeout_s: float):
        self.timeout_s = timeout_s
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai")

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.pool.shutdown(wait=True)

    async def post(self, url: str, payload: bytes, headers: dict):
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._post, url, payload, headers)

    def _post(self, url: str, payload: bytes, headers: dict):
        request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers or {}), error.read()


class _HttpxTransport:
    """httpx.AsyncClient with a connection pool as wide as the concurrency."""

    def __init__(self, concurrency: int, timeout_s: float):
        import httpx

        self.errors = (*NETWORK_ERRORS, httpx.TransportError)
        self.client = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.client.aclose()

    async def post(self, url: str, payload: bytes, headers: dict):
        response = await self.client.post(url, content=payload, headers=headers)
        return response.status_code, dict(response.headers), response.content
