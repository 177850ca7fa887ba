"""The canonical trace schema: one row = one problem with one chain-of-thought response.

Every producer of traces (the generate stage, the released-dataset adapters, the curate stage) writes rows with
these columns, and every consumer (curate, sft, evaluate) reads them. Columns a producer cannot fill are None.

A response is always rendered the R1 way: ``<think>\\n{thinking}\\n</think>\\n{answer}``; ``answer`` is the text
after ``</think>`` (it may hold ``\\boxed{}``), ``gold_answer`` is the reference answer of the problem.
"""

from __future__ import annotations

from rewards.think import THINK_CLOSE, THINK_OPEN, split_response  # noqa: F401 (one rule; re-exported for the pipeline)

TRACE_COLUMNS = {
    "id": "stable id of the problem (prompt id); samples of one problem share it",
    "sample_index": "index of this sample among the n drawn for the problem (0 for released data)",
    "problem": "the problem statement as the user asked it",
    "thinking": "the chain of thought, without the think tags",
    "answer": "the final answer part of the response (after </think>)",
    "response": "the full assistant response: <think>\\n{thinking}\\n</think>\\n{answer}",
    "messages": "chat messages [{role, content}]: user problem, assistant response (system prompt first if any)",
    "gold_answer": "the reference answer of the problem, or None when unknown",
    "source": "where the row came from: a released dataset name, a teacher id, or a task name",
    "finish_reason": "'stop' or 'length' for generated rows, None for released data",
    "prompt_tokens": "prompt length in tokens of the teacher's tokenizer, None when unknown",
    "completion_tokens": "response length in tokens of the teacher's tokenizer, None when unknown",
    "verified": "True/False when an answer check ran (verify step, released correctness flags), else None",
    "score": "the verify step's weighted reward, None before verification",
}


def render_response(thinking: str | None, answer: str) -> str:
    """The R1 layout of a response; with no thinking it is the bare answer (answers-only training)."""
    if thinking is None:
        return answer
    return f"{THINK_OPEN}\n{thinking.strip()}\n{THINK_CLOSE}\n{answer.strip()}"


def trace_row(problem: str, thinking: str | None, answer: str, *, id: str, source: str,
              gold_answer: str | None = None, system: str | None = None, **extra) -> dict:
    """One canonical row; extra columns (finish_reason, token counts, verified, ...) pass through."""
    response = render_response(thinking, answer)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": problem},
        {"role": "assistant", "content": response},
    ]
    row = {column: None for column in TRACE_COLUMNS}
    row.update(id=id, sample_index=0, problem=problem, thinking=thinking, answer=answer, response=response,
               messages=messages, gold_answer=gold_answer, source=source)
    row.update(extra)
    return row


def trace_features():
    """The `datasets.Features` of a canonical trace table, so that a column that is None in one batch and filled
    in the next (thinking, verified, ...) keeps one type."""
    import datasets  # here, not at the top: the schema is read by code that never touches datasets

    string, integer = datasets.Value("string"), datasets.Value("int64")
    types = {
        "id": string, "sample_index": integer, "problem": string, "thinking": string, "answer": string,
        "response": string, "messages": datasets.List({"role": string, "content": string}),
        "gold_answer": string, "source": string, "finish_reason": string, "prompt_tokens": integer,
        "completion_tokens": integer, "verified": datasets.Value("bool"), "score": datasets.Value("float64"),
    }
    assert list(types) == list(TRACE_COLUMNS), "trace_features() must follow TRACE_COLUMNS"
    return datasets.Features(types)
