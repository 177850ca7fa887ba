"""Thinking budgets (s1, Muennighoff et al. 2025): generate the thinking under a token budget, then the answer.

Two modes, both in two or more calls to a generation backend (pipeline/generation's interface):

- ``cap``: the thinking is generated with ``max_new_tokens=budget`` and ``</think>`` as a stop string. If it hit
  the budget without closing, ``"\\n</think>\\n"`` is appended (the forced close); if it closed (or stopped) on its
  own, ``"</think>"`` is appended where the model stopped. The answer is then generated in a second call from
  prompt + thinking + close.
- ``extend`` (budget forcing): as ``cap``, but a thinking that stops before the budget is extended up to
  ``wait_extensions`` times by replacing its ``</think>`` with ``"Wait"`` and generating on, with the budget left.

Whether the model closed the block is read from the text when the backend keeps the stop string, else from
finish_reason ("stop" = closed early, "length" = budget spent). A model that ends its turn (eos) inside the
thinking is treated like one that closed it: the close is added and the answer still asked for, as s1 does.
Every call's tokens are counted, so the ledger sees the re-read prompts of the later calls too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

THINK_CLOSE = "</think>"
FORCED_CLOSE = "\n</think>\n"
WAIT = "Wait"


@dataclass
class BudgetedCompletion:
    text: str  # the whole completion: thinking (Waits included), the close, the answer
    finish_reason: str  # of the answer call
    prompt_tokens: int | None  # of the original prompt
    completion_tokens: int  # thinking + answer tokens generated
    thinking_tokens: int  # tokens generated before the close (the budget bounds this)
    forced_close: bool  # the budget ran out and "\n</think>\n" was appended
    extensions: int = 0  # how many times an early close became "Wait"


@dataclass
class _Thinking:
    prompt_index: int
    text: str
    used: int
    prompt_tokens: int | None
    spent: bool  # the last call ended on max_new_tokens
    extensions: int = 0


@dataclass
class TokenCount:
    """Tokens processed over every call, for the ledger: prompts (each prompt once per call) and generated."""

    prompt: int = 0
    generated: int = 0

    def add(self, results) -> None:
        for completions in results:
            if completions:
                self.prompt += completions[0].prompt_tokens or 0
            self.generated += sum(c.completion_tokens or 0 for c in completions)


def _cut(completion) -> tuple[str, bool]:
    """(thinking before the first </think>, whether the model closed it): backends remove a stop string from the
    text and name it in ``stop_reason``; one that keeps it leaves the tag in the text."""
    head, tag, _ = completion.text.partition(THINK_CLOSE)
    return head, bool(tag) or getattr(completion, "stop_reason", None) == THINK_CLOSE


def _tokens(backend, completion, text: str) -> int:
    """Generated tokens of a completion; counted with the backend's tokenizer when the backend could not say."""
    if completion.completion_tokens is not None:
        return completion.completion_tokens
    counter = getattr(backend, "count_tokens", None)
    return counter(text) if counter else 0


def _think(backend, prompts: list[str], params, budget: int, count: TokenCount) -> list[_Thinking]:
    stop = [*params.stop, THINK_CLOSE] if THINK_CLOSE not in params.stop else list(params.stop)
    results = backend.generate(prompts, replace(params, max_new_tokens=budget, stop=stop))
    count.add(results)
    states = []
    for p, completions in enumerate(results):
        for c in completions:
            text, closed = _cut(c)
            states.append(_Thinking(p, text, _tokens(backend, c, c.text), c.prompt_tokens,
                                    spent=not closed and c.finish_reason == "length"))
    return states


def _extend(backend, prompts: list[str], states: list[_Thinking], params, budget: int, extensions: int,
            count: TokenCount) -> None:
    """Replace each early close with "Wait" and think on, up to `extensions` times or until the budget is spent."""
    stop = [*params.stop, THINK_CLOSE] if THINK_CLOSE not in params.stop else list(params.stop)
    for _ in range(extensions):
        todo = [s for s in states if not s.spent and s.used < budget]
        if not todo:
            return
        for s in todo:
            s.text += WAIT
            s.extensions += 1
        # One call per distinct remaining budget: the backend takes one max_new_tokens per call.
        for left in sorted({budget - s.used for s in todo}):
            group = [s for s in todo if budget - s.used == left]
            results = backend.generate([prompts[s.prompt_index] + s.text for s in group],
                                       replace(params, n=1, max_new_tokens=left, stop=stop))
            count.add(results)
            for s, (c,) in zip(group, results):
                text, closed = _cut(c)
                s.text += text
                s.used += _tokens(backend, c, c.text)
                s.spent = not closed and (c.finish_reason == "length" or s.used >= budget)


def generate_with_budget(backend, prompts: list[str], params, budget: int, mode: str = "cap",
                         wait_extensions: int = 0, answer_max_new_tokens: int | None = None,
                         count: TokenCount | None = None) -> list[list[BudgetedCompletion]]:
    """For each prompt, ``params.n`` completions whose thinking is held to ``budget`` tokens (see module doc).

    ``answer_max_new_tokens`` bounds the answer call (default: ``params.max_new_tokens``). ``count``, when given,
    accumulates the tokens of every call.
    """
    if budget < 1:
        raise ValueError(f"budget must be a positive number of tokens, got {budget}")
    if mode not in ("cap", "extend"):
        raise ValueError(f"budget mode must be 'cap' or 'extend', got {mode!r}")
    count = count if count is not None else TokenCount()
    states = _think(backend, prompts, params, budget, count)
    if mode == "extend" and wait_extensions > 0:
        _extend(backend, prompts, states, params, budget, wait_extensions, count)
    closes = [FORCED_CLOSE if s.spent else THINK_CLOSE for s in states]
    answer_params = replace(params, n=1, max_new_tokens=answer_max_new_tokens or params.max_new_tokens)
    answers = backend.generate([prompts[s.prompt_index] + s.text + close for s, close in zip(states, closes)],
                               answer_params)
    count.add(answers)
    out: list[list[BudgetedCompletion]] = [[] for _ in prompts]
    for s, close, (a,) in zip(states, closes, answers):
        out[s.prompt_index].append(BudgetedCompletion(
            text=s.text + close + a.text, finish_reason=a.finish_reason, prompt_tokens=s.prompt_tokens,
            completion_tokens=s.used + _tokens(backend, a, a.text), thinking_tokens=s.used, forced_close=s.spent,
            extensions=s.extensions))
    return out
