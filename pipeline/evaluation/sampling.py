"""Benchmark rows -> prompts -> a generation backend -> graded per-sample records, one JSONL file per pair.

A record holds everything needed to audit one number: the prompt as the model saw it, the completion, the
response the rewards graded (prefill + completion), the extracted final answer, every reward's score, whether it
counts as correct, and the token counts. Grading uses the RL rewards (``rewards.build_reward``), called the way
TRL calls them: ``fn(completions, prompts=..., **dataset columns)``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.templates import fill_template
from pipeline.run.artifacts import atomic_write_text

DEFAULT_PROMPT = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."
_OPENED_RE = re.compile(r"<think>\s*$")
# Columns that describe a reference response, not the problem: not handed to rewards as columns.
_NOT_COLUMNS = {"messages", "response", "thinking", "answer", "completion", "completions", "prompt", "prompts",
                "id", "sample_index", "finish_reason", "prompt_tokens", "completion_tokens", "verified", "score"}
_FULL_SCORE = 1.0 - 1e-9


@dataclass
class Grader:
    """The rewards an evaluation grades with, and which of them define correctness and format."""

    rewards: list  # callables fn(completions, **columns) -> list[float | None], named by __name__
    correct: str  # the reward whose full score (1.0) means "correct"
    format: str | None  # the reward whose full score means "well formatted" (None: not reported)

    @classmethod
    def from_specs(cls, specs: list, correct: str, format: str | None) -> Grader:
        from rewards import build_reward

        return cls([build_reward(spec) for spec in specs], correct, format)


def build_messages(problem: str, template: str, system_prompt: str | None) -> list[dict]:
    """[system,] user: the template with {problem} filled in (pipeline/data/templates.py's syntax)."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": fill_template(template, {"problem": problem})}]


def split_opened(chat_prompt: str, prefill: str | None) -> tuple[str, str]:
    """(prompt for the rewards, text that starts the response): a ``<think>`` the chat template opened moves from
    the prompt to the response, so the response is graded as the model's whole turn."""
    prefix = prefill or ""
    opened = _OPENED_RE.search(chat_prompt)
    if opened:
        return chat_prompt[: opened.start()], chat_prompt[opened.start():] + prefix
    return chat_prompt, prefix


def sample(backend, prompts: list, params, budget: int | None, cfg, count, rows: list[dict]) -> list[list[dict]]:
    """n samples per prompt as dicts (text, finish_reason, token counts, thinking_tokens when a budget knows it)."""
    from pipeline.evaluation.budgets import generate_with_budget

    if budget is None:
        results = backend.generate(prompts, params, rows=rows)  # rows: the procedural backend writes their solutions
        count.add(results)
        return [[{"text": c.text, "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                  "completion_tokens": c.completion_tokens, "thinking_tokens": None, "forced_close": False,
                  "extensions": 0} for c in completions] for completions in results]
    results = generate_with_budget(backend, prompts, params, budget, cfg.budget_mode, cfg.wait_extensions,
                                   cfg.answer_max_new_tokens, count)
    return [[dict(c.__dict__) for c in completions] for completions in results]


def token_counter(backend):
    """A text -> token count function from the backend (or its tokenizer); None when it has neither."""
    if hasattr(backend, "count_tokens"):
        return backend.count_tokens
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        return None
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def thinking_tokens(completion: str, response: str, completion_tokens: int | None, counter) -> int | None:
    """Tokens generated before ``</think>``; all of them when the thinking never closed; None without thinking
    (or without a way to count)."""
    if "</think>" in completion:
        return counter(completion.partition("</think>")[0]) if counter else None
    return completion_tokens if "<think>" in response else None


def reward_columns(rows: list[dict], n: int) -> dict[str, list]:
    """Each problem column repeated once per sample, as TRL hands dataset columns to rewards."""
    names = [k for k in rows[0] if k not in _NOT_COLUMNS] if rows else []
    return {name: [row[name] for row in rows for _ in range(n)] for name in names}


def grade(rows: list[dict], chat_prompts: list[str], prompts: list[str], samples: list[list[dict]], prefill,
          grader: Grader, counter, meta: dict) -> list[dict]:
    """Per-sample records with every reward's score, the extracted answer, correctness and lengths."""
    from rewards.text import answer_part, extract_final_answer

    n = len(samples[0]) if samples else 0
    base = [split_opened(p, prefill) for p in chat_prompts]
    completions = [base[i][1] + s["text"] for i, group in enumerate(samples) for s in group]
    reward_prompts = [base[i][0] for i, group in enumerate(samples) for _ in group]
    columns = reward_columns(rows, n)
    scores = {}
    for fn in grader.rewards:
        values = fn(completions, prompts=reward_prompts, **columns)
        scores[fn.__name__] = [None if v is None else float(v) for v in values]
    records, flat = [], 0
    for i, (row, group) in enumerate(zip(rows, samples)):
        for j, s in enumerate(group):
            response = completions[flat]
            mine = {name: values[flat] for name, values in scores.items()}
            correct, fmt = mine.get(grader.correct), mine.get(grader.format) if grader.format else None
            think = s["thinking_tokens"]
            if think is None:
                think = thinking_tokens(s["text"], response, s["completion_tokens"], counter)
            records.append({
                **meta, "problem_id": str(row["id"]), "sample_index": j, "level": row.get("level"),
                "gold_answer": row.get("gold_answer"), "prompt": prompts[i], "completion": s["text"],
                "response": response, "extracted_answer": extract_final_answer(answer_part(response)),
                "scores": mine, "correct": None if correct is None else correct >= _FULL_SCORE,
                "format_ok": None if fmt is None else fmt >= _FULL_SCORE, "finish_reason": s["finish_reason"],
                "prompt_tokens": s["prompt_tokens"], "completion_tokens": s["completion_tokens"],
                "thinking_tokens": think, "forced_close": s["forced_close"], "extensions": s["extensions"],
            })
            flat += 1
    return records


def read_records(path: Path, expected: int) -> list[dict] | None:
    """The records of a finished pair, or None when the file is missing, torn or has the wrong number of rows."""
    if not path.exists():
        return None
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError:
        return None
    return records if len(records) == expected else None


def write_records(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))


def run_pair(backend, rows: list[dict], cfg, bench, grader: Grader, seed: int, budget: int | None, meta: dict,
             count) -> list[dict]:
    """Sample, grade and return the records of one (model, benchmark[, budget]) pair."""
    from pipeline.generation import SamplingParams

    messages = [build_messages(row["problem"], bench.prompt_template, cfg.system_prompt) for row in rows]
    chat_prompts = [backend.render(m, add_generation_prompt=True) for m in messages]
    prompts = [p + (cfg.prefill or "") for p in chat_prompts]
    inputs = prompts
    if getattr(backend, "wants_messages", False):
        if budget is not None or cfg.prefill:
            raise ValueError(f"backend '{backend.name}' takes chat messages: thinking budgets and prefill need a "
                             "completion-style backend (for openai, set backend_options.chat: false)")
        inputs = messages
    params = SamplingParams(n=bench.n, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens, seed=seed, stop=list(cfg.stop))
    samples = sample(backend, inputs, params, budget, cfg, count, rows)
    return grade(rows, chat_prompts, prompts, samples, cfg.prefill, grader, token_counter(backend), meta)
