"""Generation backends behind one interface, shared by the generate and evaluate stages.

A backend takes fully rendered prompt strings (chat template already applied, prefill included) and returns,
for each prompt, `n` completions. Callers that need two-phase generation (thinking budgets) call it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 512
    seed: int = 0
    stop: list[str] = field(default_factory=list)  # extra stop strings (eos always stops)


@dataclass
class Completion:
    text: str  # the generated continuation only, special tokens removed (think tags kept)
    finish_reason: str  # "stop" (eos or a stop string) or "length" (hit max_new_tokens)
    prompt_tokens: int
    completion_tokens: int


# The interface every backend implements (duck-typed; see pipeline/generation/*.py):
#   backend.name -> str                    teacher identity written into every row
#   backend.tokenizer                       for chat templates and token counts (None for remote endpoints)
#   backend.render(messages, add_generation_prompt=True) -> str
#   backend.generate(prompts: list[str], params: SamplingParams) -> list[list[Completion]]   (len n each)
#   backend.close()
