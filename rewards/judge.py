"""An LLM judge over an OpenAI-compatible ``/chat/completions`` endpoint, with the standard library only.

The API key is read from the environment variable the config names, sent as ``Authorization: Bearer``, and never
logged: failures are logged with the exception type and HTTP status only, and score None (cannot judge).
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .models import prompt_messages

logger = logging.getLogger(__name__)

DEFAULT_RUBRIC = (
    "You grade how helpful an assistant's final answer is to the user's request: correct, complete, clear and "
    "directly useful. Reply with one line 'Score: N' where N is an integer from 0 (useless) to 10 (excellent)."
)
JUDGE_DEFAULTS = {
    "base_url": None,  # e.g. http://localhost:8000/v1 ; /chat/completions is appended
    "model": None,
    "api_key_env": None,  # name of the environment variable holding the key; None sends no key
    "rubric": DEFAULT_RUBRIC,
    "timeout_s": 60.0,
    "max_workers": 8,
    "max_tokens": 256,
    "temperature": 0.0,
}
_SCORE_RE = re.compile(r"score\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_OUT_OF_TEN_RE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*10\b")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")


def judge_config(judge: dict) -> dict:
    """``judge`` with defaults filled in; ValueError naming an unknown key or a missing base_url/model."""
    if not isinstance(judge, dict):
        raise ValueError(  # noqa: TRY004 - recipe mistakes are ValueErrors, one kind for the CLI to report
            f"judge must be a dict with keys {sorted(JUDGE_DEFAULTS)}, got {type(judge).__name__}"
        )
    unknown = sorted(set(judge) - set(JUDGE_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown judge key '{unknown[0]}'. Valid keys: {', '.join(JUDGE_DEFAULTS)}")
    config = {**JUDGE_DEFAULTS, **judge}
    for key in ("base_url", "model"):
        if not isinstance(config[key], str) or not config[key]:
            raise ValueError(f"judge.{key} is required (a string)")
    return config


def parse_score(text: str) -> float | None:
    """A 0-10 grade from the judge's reply, scaled to [0, 1]; None when absent or out of range.

    Looks for the last "Score: N", then the last "N/10", then the last number.
    """
    for pattern in (_SCORE_RE, _OUT_OF_TEN_RE, _NUMBER_RE):
        found = pattern.findall(text)
        if found:
            value = float(found[-1])
            return value / 10.0 if 0.0 <= value <= 10.0 else None
    return None


def judge_scores(config: dict, prompts: list, responses: list[str]) -> list[float | None]:
    """The judge's grade in [0, 1] of each (prompt, response), asked concurrently; None where a request failed."""
    key = None
    if config["api_key_env"]:
        key = os.environ.get(config["api_key_env"])
        if not key:
            raise ValueError(f"judge.api_key_env names '{config['api_key_env']}', which is not set in the environment")
    workers = max(1, min(int(config["max_workers"]), len(responses)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda pair: _ask(config, key, *pair), zip(prompts, responses)))


def _ask(config: dict, key: str | None, prompt, response: str) -> float | None:
    question = "\n".join(m["content"] for m in prompt_messages(prompt) if m["role"] != "system")
    body = {
        "model": config["model"],
        "messages": [
            {"role": "system", "content": config["rubric"]},
            {"role": "user", "content": f"[Request]\n{question}\n\n[Answer]\n{response}"},
        ],
        "temperature": config["temperature"],
        "max_tokens": config["max_tokens"],
    }
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = config["base_url"].rstrip("/") + "/chat/completions"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=float(config["timeout_s"])) as reply:
            content = json.load(reply)["choices"][0]["message"]["content"]
        return parse_score(content if isinstance(content, str) else "")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:  # URLError/HTTPError are OSErrors
        status = getattr(error, "code", None)
        detail = f" (HTTP {status})" if status else ""
        logger.warning("judge request to %s failed: %s%s", url, type(error).__name__, detail)
        return None
