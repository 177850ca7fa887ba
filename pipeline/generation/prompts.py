"""From source rows to prompts, and from completions to canonical trace rows: the generate stage's data plumbing.

Prompt templates follow pipeline/data/templates.py: `{column}` fields, `{{` and `}}` for literal braces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pipeline.data.schema import THINK_OPEN, TRACE_COLUMNS, split_response
from pipeline.data.templates import fill_template

R1_MATH_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_TEMPLATE = "{problem}\n" + R1_MATH_SUFFIX
GENERATED_COLUMNS = ("teacher", "sampling")  # added to the canonical columns by the generate stage


@dataclass
class Unit:
    """One prompt: its id, the chat messages before the answer, what the backend receives, the source row, and
    the start of the response the prompt already wrote (a `<think>\n` the template opened, the prefill)."""

    id: str
    messages: list[dict]
    prompt: str | list  # a rendered string, or messages (+ a prefill turn) for a chat endpoint
    row: dict
    opened: str = ""

    def sort_key(self) -> tuple:
        size = len(self.prompt) if isinstance(self.prompt, str) else len(json.dumps(self.prompt))
        return size, self.id


def prompt_id(messages: list[dict]) -> str:
    """A stable id from the prompt's text (system + user turns), the same whatever the teacher or its template."""
    return "p-" + hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def build_units(rows, *, template: str, system_prompt: str | None, prefill: str, id_column: str | None,
                backend, chat_template: bool) -> tuple[list[Unit], int]:
    """(units in source order, number of prompts dropped as exact repeats). Ids come from `id_column` when the
    data has it, and from the prompt text otherwise. A repeated id with the same prompt is a repeat and is dropped
    (a released dataset holds one row per generation: OpenR1's problems appear 2-4 times); a repeated id with
    another prompt is an error."""
    units, seen, repeats = [], {}, 0
    for row in rows:
        user = fill_template(template, row)
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": user}]
        use_column = id_column is not None and row.get(id_column) is not None
        uid = str(row[id_column]) if use_column else prompt_id(messages)
        if uid in seen:
            if seen[uid] != messages:
                raise ValueError(f"id_column '{id_column}' gives the id '{uid}' to two different prompts; fix the "
                                 f"ids, or set id_column: null to id prompts by a hash of their text")
            repeats += 1
            continue
        seen[uid] = messages
        prompt, opened = _backend_prompt(messages, prefill, backend, chat_template, system_prompt)
        units.append(Unit(uid, messages, prompt, row, opened))
    return units, repeats


def _backend_prompt(messages, prefill, backend, chat_template: bool, system_prompt) -> tuple[str | list, str]:
    """(what the backend receives, the start of the response it holds)."""
    if backend.wants_messages:
        return messages + ([{"role": "assistant", "content": prefill}] if prefill else []), prefill
    if chat_template:
        from pipeline.evaluation.sampling import split_opened

        rendered = backend.render(messages, add_generation_prompt=True)
        prefill = _not_reopened(prefill, rendered)
        return rendered + prefill, split_opened(rendered, prefill)[1]
    user = messages[-1]["content"]
    return (f"{system_prompt}\n\n" if system_prompt else "") + user + prefill, prefill


def _not_reopened(prefill: str, rendered: str) -> str:
    """The prefill without a `<think>` the chat template's generation prompt already opened (R1-Distill templates
    end it with `<think>\n`): a recipe's prefill "<think>\n" would otherwise open a second think block."""
    if not (rendered.rstrip().endswith(THINK_OPEN) and prefill.lstrip().startswith(THINK_OPEN)):
        return prefill
    written = rendered[rendered.rfind(THINK_OPEN) + len(THINK_OPEN):]  # "\n" after the template's tag
    return prefill.lstrip()[len(THINK_OPEN):].removeprefix(written)


def passthrough_columns(columns: list[str]) -> list[str]:
    """Source columns copied onto every sample (countdown's numbers/target, a dataset's level, ...)."""
    return [c for c in columns if c not in TRACE_COLUMNS and c not in GENERATED_COLUMNS]


def trace_from_completion(unit: Unit, sample_index: int, completion, *, teacher: str, sampling: dict,
                          passthrough: list[str]) -> dict:
    """One canonical trace row; the response is what the prompt opened (the template's `<think>\n`, the prefill)
    + the completion, split the rewards.split_response way."""
    response = unit.opened + completion.text
    thinking, answer = split_response(response)
    problem = unit.row.get("problem")
    gold = unit.row.get("gold_answer")
    row = dict.fromkeys(TRACE_COLUMNS)
    row.update(
        id=unit.id, sample_index=sample_index,
        problem=problem if isinstance(problem, str) else unit.messages[-1]["content"],
        thinking=thinking, answer=answer, response=response,
        messages=unit.messages + [{"role": "assistant", "content": response}],
        gold_answer=None if gold is None else str(gold), source=teacher,
        finish_reason=completion.finish_reason, prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )
    row.update(teacher=teacher, sampling=sampling)
    row.update({c: unit.row.get(c) for c in passthrough})
    return row


def output_features(source_features, passthrough: list[str]):
    """Canonical trace features + teacher + sampling + the passthrough columns with their source types."""
    import datasets

    from pipeline.data.schema import trace_features

    string, integer, real = datasets.Value("string"), datasets.Value("int64"), datasets.Value("float64")
    sampling = {"n": integer, "temperature": real, "top_p": real, "max_new_tokens": integer, "seed": integer,
                "stop": datasets.List(string)}
    features = dict(trace_features())
    features.update(teacher=string, sampling=sampling)
    features.update({c: source_features[c] for c in passthrough})
    return datasets.Features(features)
