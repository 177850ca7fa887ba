"""An LLM judge over an OpenAI-compatible ``/chat/completions`` endpoint.

Requests go through rewards.http.Client, the client the `openai` generation backend uses: at most `max_workers`
in flight, 429/408/5xx/timeouts retried with backoff and Retry-After. A request that still fails scores None
(cannot judge) with a warning. The API key is read from the environment variable the config names, sent as
``Authorization: Bearer``, and cut out of every message, even when the server echoes it back.
"""

from __future__ import annotations

import logging
import re

from .http import Client, RequestFailed, bearer_headers
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
    "max_retries": 3,  # retries of 429/408/5xx/timeouts before a request scores None
    "backoff_s": 0.5,
    "max_backoff_s": 30.0,
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
    if not responses:
        return []
    client = Client(config["base_url"].rstrip("/") + "/chat/completions",
                    bearer_headers(config["api_key_env"], "judge.api_key_env"),
                    concurrency=int(config["max_workers"]), timeout_s=float(config["timeout_s"]),
                    max_retries=int(config["max_retries"]), backoff_s=float(config["backoff_s"]),
                    max_backoff_s=float(config["max_backoff_s"]), label="judge")
    replies = client.post_each([_body(config, p, r) for p, r in zip(prompts, responses)])
    return [_score(reply, client) for reply in replies]


def _body(config: dict, prompt, response: str) -> dict:
    question = "\n".join(m["content"] for m in prompt_messages(prompt) if m["role"] != "system")
    return {
        "model": config["model"],
        "messages": [
            {"role": "system", "content": config["rubric"]},
            {"role": "user", "content": f"[Request]\n{question}\n\n[Answer]\n{response}"},
        ],
        "temperature": config["temperature"],
        "max_tokens": config["max_tokens"],
    }


def _score(reply, client: Client) -> float | None:
    if isinstance(reply, RequestFailed):
        logger.warning("judge request failed, scored None: %s", reply)  # already redacted by the client
        return None
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        logger.warning("judge reply without choices[0].message.content, scored None: %s",
                       client.redact(str(reply)[:200]))
        return None
    return parse_score(content if isinstance(content, str) else "")
