"""One HTTP client for OpenAI-compatible endpoints: the `openai` generation backend and the LLM judge share it.

Requests run concurrently (asyncio, at most `concurrency` in flight) over httpx when it is installed, else urllib
in a thread pool. 429, 408, 5xx, timeouts and connection errors are retried with exponential backoff and full
jitter, waiting at least Retry-After when the server sends it; other 4xx fail at once with the server's message.
The API key lives only in the request headers, and every message this module makes (retry warnings, failures)
has the key cut out, even when a server echoes the Authorization header back in its error body.

    client = Client(url, bearer_headers("MY_KEY_ENV", "judge.api_key_env"), concurrency=8, max_retries=4)
    replies = client.post_each([body1, body2])    # a dict per request, or a RequestFailed where it gave up
    replies = client.post_all([body1, body2])     # the dicts; raises the first RequestFailed

Plain Python with the standard library (httpx optional): nothing here imports `pipeline`.
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

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 600.0
NETWORK_ERRORS = (OSError, http.client.HTTPException)  # OSError covers timeouts, refused/reset connections, URLError


class RequestFailed(RuntimeError):
    pass


def bearer_headers(api_key_env: str | None, field: str = "options.api_key_env") -> dict:
    """JSON headers, with `Authorization: Bearer <key>` read from the environment variable `api_key_env`."""
    headers = {"Content-Type": "application/json"}
    if not api_key_env:
        return headers
    key = os.environ.get(api_key_env)
    if not key:
        raise ValueError(f"{field}: the environment variable {api_key_env} is not set or empty; "
                         f"export {api_key_env}=... before running (the key is never written to the recipe)")
    return {**headers, "Authorization": f"Bearer {key}"}


class Client:
    def __init__(self, url: str, headers: dict, *, concurrency: int = 32, timeout_s: float = 600.0,
                 max_retries: int = 8, backoff_s: float = 1.0, max_backoff_s: float = 60.0, transport: str = "auto",
                 label: str = "request"):
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("options: concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
        self.url, self.headers, self.label = url, dict(headers), label
        self.concurrency, self.timeout_s, self.max_retries = int(concurrency), float(timeout_s), int(max_retries)
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self._transport = pick_transport(transport)
        auth = next((v for k, v in self.headers.items() if k.lower() == "authorization"), "")
        secret = auth.split(" ", 1)[-1].strip()
        self._secrets = [secret] if len(secret) >= 4 else []

    def redact(self, text: str) -> str:
        """`text` with the API key cut out (a server may echo the Authorization header in its error body)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def post_all(self, bodies: list[dict]) -> list[dict]:
        results = self.post_each(bodies)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return results

    def post_each(self, bodies: list[dict]) -> list:
        """One JSON reply per body, in order; a RequestFailed in place of each request that gave up."""
        return _run(self._post_each(bodies))

    async def _post_each(self, bodies: list[dict]) -> list:
        gate = asyncio.Semaphore(self.concurrency)
        async with self._transport(self.concurrency, self.timeout_s) as transport:
            async def one(body):
                async with gate:
                    return await self._post_with_retries(transport, body)

            results = await asyncio.gather(*(one(b) for b in bodies), return_exceptions=True)
        unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, RequestFailed)]
        if unexpected:
            raise unexpected[0]
        return results

    async def _post_with_retries(self, transport, body: dict) -> dict:
        payload = json.dumps(body).encode()
        problem = None
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                status, headers, data = await transport.post(self.url, payload, self.headers)
            except transport.errors as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if status == 200:
                    try:
                        return json.loads(data)
                    except ValueError:
                        problem = f"HTTP 200 with a body that is not JSON: {excerpt(data)}"
                elif status in RETRY_STATUS:
                    problem, wait = f"HTTP {status}: {excerpt(data)}", retry_after(headers)
                else:
                    hint = " (check the key in the api_key_env variable)" if status in (401, 403) else ""
                    raise RequestFailed(self.redact(f"{self.url} refused the request with HTTP {status}: "
                                                    f"{excerpt(data)}{hint}"))
            if attempt == self.max_retries:
                break
            delay = wait if wait is not None else self._backoff(attempt)
            log.warning("%s", self.redact(f"{self.label}: {problem}; retry {attempt + 1}/{self.max_retries} "
                                          f"in {delay:.1f} s"))
            await asyncio.sleep(delay)
        raise RequestFailed(self.redact(f"{self.url}: giving up after {self.max_retries + 1} attempts; "
                                        f"last: {problem}"))

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)], so clients that failed together spread out."""
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))


def _run(coroutine):
    """asyncio.run, also from a thread whose event loop is already running (a notebook, an async trainer)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


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


def excerpt(data) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return " ".join(text.split())[:300]


# ---- transports: post(url, payload, headers) -> (status, headers, body bytes); network errors raise `errors` ----

def pick_transport(name: str):
    if name not in ("auto", "httpx", "urllib"):
        raise ValueError(f"options.transport: '{name}' is not one of auto, httpx, urllib")
    if name in ("auto", "httpx"):
        try:
            import httpx  # noqa: F401
        except ImportError:
            if name == "httpx":
                raise ImportError("options.transport: httpx is not installed; pip install httpx or use urllib") from None
        else:
            return HttpxTransport
    return UrllibTransport


class UrllibTransport:
    """urllib in a thread pool as wide as the concurrency (asyncio's default pool has only cpu+4 threads)."""

    errors = NETWORK_ERRORS

    def __init__(self, concurrency: int, timeout_s: float):
        self.timeout_s = timeout_s
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="http")

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


class HttpxTransport:
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
