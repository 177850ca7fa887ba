"""The `procedural` backend: each row's own reference solution written as a chain of thought, no model at all.

Rows from the tasks stage carry `thinking` (the reference solution) and `answer`/`gold_answer`; the completion is
`<think>\\n{thinking}\\n</think>\\n{answer}`. When the prompt already ends with the start of that text (a `<think>\\n`
prefill), the overlap is left out, so prefill + completion is the full response. The n samples of a prompt are
identical copies: there is nothing to sample. Stop strings cut the text as in the other backends (the evaluate
stage stops at `</think>`); max_new_tokens is not applied, because a reference solution is never truncated.
Token counts come from a tokenizer when one is given, else they are None (and the ledger counts no tokens: no
model generated anything).
"""

from __future__ import annotations

from pipeline.data.schema import render_response
from pipeline.generation import Completion, SamplingParams, apply_stop, render_with

THINKING_COLUMNS = ("thinking", "solution")
ANSWER_COLUMNS = ("answer", "gold_answer")


class ProceduralBackend:
    name = "procedural"
    wants_messages = False
    parameters = None

    def __init__(self, tokenizer=None):
        if isinstance(tokenizer, str):
            from pipeline.training.models import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return render_with(self.tokenizer, messages, add_generation_prompt)

    def generate(self, prompts: list[str], params: SamplingParams, rows: list[dict] | None = None):
        if rows is None or len(rows) != len(prompts):
            raise ValueError("the procedural backend writes each row's reference solution: pass rows= (one source "
                             "row per prompt, with a thinking or solution column)")
        out = []
        for prompt, row in zip(prompts, rows):
            full = reference_response(row)
            text, stop = apply_stop(full[_overlap(prompt, full):], params.stop)
            out.append([Completion(text, "stop", self._count(prompt), self._count(text), stop)] * params.n)
        return out

    def _count(self, text: str) -> int | None:
        if self.tokenizer is None:
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        pass


def reference_response(row: dict) -> str:
    """`<think>\\n{thinking}\\n</think>\\n{answer}` from a row's reference solution and answer."""
    thinking = next((row[c] for c in THINKING_COLUMNS if row.get(c) is not None), None)
    answer = next((row[c] for c in ANSWER_COLUMNS if row.get(c) is not None), None)
    if thinking is None or answer is None:
        raise ValueError(f"the procedural backend needs a reference solution in each row: one of "
                         f"{'/'.join(THINKING_COLUMNS)} and one of {'/'.join(ANSWER_COLUMNS)}; this row has "
                         f"columns {', '.join(sorted(row))}. Generate the rows with a `tasks` stage.")
    return render_response(str(thinking), str(answer))


def _overlap(prompt: str, text: str, longest: int = 64) -> int:
    """Length of the longest suffix of `prompt` (up to `longest` chars) that is a prefix of `text`: the prefill."""
    for k in range(min(longest, len(prompt), len(text)), 0, -1):
        if prompt.endswith(text[:k]):
            return k
    return 0
