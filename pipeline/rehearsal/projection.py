"""A full-scale cost projection from what a rehearsal measured, with the ledger's own FLOPs formulas (compute.py).

Per stage: the tokens it will process (measured with the real tokenizer on the rows the rehearsal sampled, scaled by
the full dataset's row count, epochs and samples per prompt), FLOPs from the REAL (unshrunk) parameter count,
device-hours at a stated MFU on a stated device, and money at the recipe's price. What it cannot measure it
assumes, and says so in the stage's `assumptions`: how long generated completions will be (a share of the
generation budget), and the rows a filtering step keeps when the rehearsal's rows were a random model's samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.run.compute import ModelShape, forward_flops, generation_flops, training_flops

PEAK_FLOPS = 989e12  # H100 SXM, bf16 dense tensor-core peak (NVIDIA's datasheet); the projection's reference device
MFU_TRAIN = 0.40
MFU_DECODE = 0.10
COMPLETION_SHARE = 0.25  # assumed mean completion length as a share of its budget (max_new_tokens)
NAMED_BENCHMARK_ROWS = {"gsm8k": 1319, "math500": 500, "aime24": 30, "amc23": 40}
TRL_DEFAULT_EPOCHS = 3  # transformers' TrainingArguments.num_train_epochs default


@dataclass
class StageCost:
    stage: str
    kind: str
    rows: int | None = None  # full-scale rows the stage reads
    tokens_trained: float = 0.0
    tokens_generated: float = 0.0
    tokens_forward: float = 0.0  # scored without training: a teacher, a reference model
    flops: float = 0.0
    device_hours: float = 0.0
    assumptions: list[str] = field(default_factory=list)

    def price(self, per_device_hour: float) -> float:
        return self.device_hours * per_device_hour


def shape(info: dict | None) -> ModelShape:
    """The full-size model's FLOPs shape as shrink.py recorded it (no shape: a stand-in, 0 FLOPs)."""
    return ModelShape(**info) if info else ModelShape(0)


def device_hours(train: float, decode: float) -> float:
    return (train / (PEAK_FLOPS * MFU_TRAIN) + decode / (PEAK_FLOPS * MFU_DECODE)) / 3600.0


def token_weighted_context(lengths: list[int]) -> float:
    """sum(T^2) / sum(T): the mean context a token's query sees over sequences of these lengths (compute.py)."""
    return sum(n * n for n in lengths) / sum(lengths) if lengths else 0.0


def sft_cost(cost: StageCost, model: ModelShape, lengths: list[int], real: dict) -> StageCost:
    epochs = float(real.get("num_train_epochs", TRL_DEFAULT_EPOCHS))
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    cost.tokens_trained = (cost.rows or 0) * mean * epochs
    cost.flops = training_flops(model, cost.tokens_trained, token_weighted_context(lengths))
    cost.device_hours = device_hours(cost.flops, 0.0)
    return cost


def sampling_cost(cost: StageCost, model: ModelShape, prompt_tokens: float, samples: float, budget: int) -> StageCost:
    """generate / evaluate: every sample reads its prompt and writes an assumed share of its budget."""
    completion = COMPLETION_SHARE * budget
    cost.assumptions.append(f"completions average {completion:.0f} tokens ({COMPLETION_SHARE:.0%} of {budget})")
    cost.tokens_generated = samples * completion
    cost.tokens_forward = samples * prompt_tokens
    cost.flops = generation_flops(model, cost.tokens_forward, cost.tokens_generated, int(samples))
    cost.device_hours = device_hours(0.0, cost.flops)
    return cost


def grpo_cost(cost: StageCost, model: ModelShape, prompt_tokens: float, real: dict) -> StageCost:
    epochs = float(real.get("num_train_epochs", TRL_DEFAULT_EPOCHS))
    generations = int(real.get("num_generations", 8))
    budget = int(real.get("max_completion_length", 256))
    completions = int((cost.rows or 0) * epochs * generations)
    completion = COMPLETION_SHARE * budget
    cost.assumptions.append(f"completions average {completion:.0f} tokens ({COMPLETION_SHARE:.0%} of {budget})")
    cost.tokens_generated = completions * completion
    cost.tokens_trained = completions * (prompt_tokens + completion)
    context = prompt_tokens + completion
    # each of num_iterations passes trains on every token; beta > 0 adds a reference model's forward pass
    iterations = int(real.get("num_iterations", 1))
    cost.tokens_forward = cost.tokens_trained if float(real.get("beta", 0.0)) > 0 else 0.0
    train = iterations * training_flops(model, cost.tokens_trained, context) + \
        forward_flops(model, cost.tokens_forward, context)
    decode = generation_flops(model, completions * prompt_tokens, cost.tokens_generated, completions)
    cost.flops = train + decode
    cost.device_hours = device_hours(train, decode)
    return cost


def reward_model_cost(cost: StageCost, model: ModelShape, tokens_per_side: float, real: dict) -> StageCost:
    epochs = float(real.get("num_train_epochs", 1))
    cost.tokens_trained = (cost.rows or 0) * 2 * tokens_per_side * epochs  # chosen and rejected
    cost.flops = training_flops(model, cost.tokens_trained, tokens_per_side)
    cost.device_hours = device_hours(cost.flops, 0.0)
    return cost


def format_hours(hours: float) -> str:
    return f"{hours:.2g} h" if hours >= 0.01 else f"{hours * 3600:.0f} s"
