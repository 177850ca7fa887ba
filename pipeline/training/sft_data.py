"""Canonical traces -> chat examples for supervised fine-tuning: rendering, answers-only, mixtures, length counts.

A trace row becomes ``messages``: an optional system prompt, the user's problem, and the assistant's response in
the R1 layout ``<think>\\n{thinking}\\n</think>\\n{answer}``. The row's own ``messages`` column is used as it is
when present (it may hold a multi-turn conversation); otherwise, and always for answers-only training, the turn is
rebuilt from ``problem``/``thinking``/``answer`` (or ``response``) with `pipeline.data.schema.render_response`.

Everything here works on `datasets.Dataset` objects and imports `datasets` only inside functions.
"""

from __future__ import annotations

import random

from pipeline.data.schema import render_response, split_response

HINT = "the sft stage reads canonical traces (problem + thinking/answer/response, or messages); rename columns " \
       "with data: {..., columns: {their_name: problem}}"


def to_messages(row: dict, answers_only: bool = False, system_prompt: str | None = None, where: str = "row") \
        -> list[dict]:
    """The chat messages one trace row trains on. Answers-only: the assistant says the final answer only."""
    messages = row.get("messages")
    if messages and not answers_only:
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"{where}: messages must end with an assistant turn; {HINT}")
    else:
        messages = [{"role": "user", "content": _field(row, "problem", where)},
                    {"role": "assistant", "content": _assistant_text(row, answers_only, where)}]
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def _assistant_text(row: dict, answers_only: bool, where: str) -> str:
    thinking, answer = row.get("thinking"), row.get("answer")
    if answer is None:  # rows with only a response (e.g. before curation split it)
        thinking, answer = split_response(_field(row, "response", where))
    if answers_only:
        return str(answer).strip()
    return render_response(thinking, str(answer))


def _field(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if value is None or value == "":
        raise ValueError(f"{where} has no '{name}'; {HINT}")
    return str(value)


def render_dataset(dataset, answers_only: bool = False, system_prompt: str | None = None, name: str = "data"):
    """A Dataset with one column, `messages`. Other columns are dropped on purpose: a stray `prompt` or `text`
    column would make TRL read the rows as another dataset type."""
    import datasets

    rows = [{"messages": to_messages(row, answers_only, system_prompt, where=f"{name} row {i}")}
            for i, row in enumerate(dataset)]
    if not rows:
        raise ValueError(f"{name} is empty: the sft stage needs at least one trace")
    return datasets.Dataset.from_list(rows)


def mixture_counts(sizes: list[int], weights: list[float]) -> list[int]:
    """How many rows each dataset contributes: weight x its size, rounded (0.5 = half of it, 2 = it twice)."""
    return [max(1, round(size * weight)) if size else 0 for size, weight in zip(sizes, weights)]


def mix(datasets_: list, weights: list[float], seed: int):
    """Sample each dataset by its weight (seeded, without replacement within each full pass), concatenate and
    shuffle. With one dataset of weight 1 this is the dataset itself, unshuffled: the trainer's sampler shuffles."""
    import datasets

    if len(datasets_) == 1 and weights[0] == 1.0:
        return datasets_[0]
    parts = []
    rng = random.Random(seed)
    for data, count in zip(datasets_, mixture_counts([len(d) for d in datasets_], weights)):
        indices = list(range(len(data))) * (count // len(data))  # whole passes for weights >= 1
        indices += rng.sample(range(len(data)), count % len(data))
        parts.append(data.select(indices))
    return datasets.concatenate_datasets(parts).shuffle(seed=seed)


def token_lengths(dataset, tokenizer, column: str = "messages") -> list[int]:
    """Token count of each chat as the chat template renders it (what TRL tokenizes)."""
    def lengths(batch):
        ids = tokenizer.apply_chat_template(batch[column], tokenize=True, return_dict=True)["input_ids"]
        return {"n": [len(x) for x in ids]}

    return dataset.map(lengths, batched=True, batch_size=256, remove_columns=dataset.column_names)["n"]


def length_report(lengths: list[int], max_length: int | None) -> dict:
    """Counts that say what max_length will do to the data, before any training step is spent on it."""
    if not lengths:
        return {"examples": 0, "truncated": 0}
    ordered = sorted(lengths)
    return {
        "examples": len(lengths),
        "truncated": sum(n > max_length for n in lengths) if max_length else 0,
        "max_length": max_length,
        "longest": ordered[-1],
        "median": ordered[len(ordered) // 2],
        "tokens": sum(min(n, max_length) if max_length else n for n in lengths),
    }


def padding_fraction(lengths: list[int], order: list[int], batch_size: int) -> float:
    """Share of a padded batch that is padding when examples are batched in `order` (pad to the longest)."""
    padded = real = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start:start + batch_size]]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return 0.0 if not padded else 1 - real / padded


def holdout(dataset, count: int, seed: int):
    """(train, held_out): `count` rows drawn at random (seeded) are held out, the rest kept in order."""
    count = min(count, max(0, len(dataset) - 1))
    chosen = set(random.Random(seed).sample(range(len(dataset)), count))
    keep = [i for i in range(len(dataset)) if i not in chosen]
    return dataset.select(keep), dataset.select(sorted(chosen))
