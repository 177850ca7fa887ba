"""What a rehearsal checks after each stage, with the real tokenizer and template, on the rows it sampled.

Each check is (name, ok, detail). `ok` is True (passed), False (a real-run failure waiting to happen) or None
(information a reader should see, not a failure). Model checks run once per model:
- template: the chat template renders a conversation and the text round-trips through the tokenizer;
- thinking: the rendered assistant turn still holds its thinking (templates that drop it are trained through the
  prompt/completion path by the sft stage, which checks that itself);
- turn end: the token that ends an assistant turn is the tokenizer's eos and a stop token of the generation config;
- think tags: `<think>`/`</think>` are single tokens of the vocabulary;
- bos: a tokenized chat prompt holds at most one BOS.
Stage checks: the share of sampled rows the REAL max_length would truncate (sft, reward_model), the share of
sampled rows whose rewards return None (grpo: the gold answer does not parse), and that the resumed run continued
from its checkpoint and its saved model reloads.
"""

from __future__ import annotations

import logging

log = logging.getLogger("reasonforge.rehearsal")

PROBE = [{"role": "user", "content": "What is 2 + 3?"},
         {"role": "assistant", "content": "<think>\nTwo plus three is five.\n</think>\n\nThe answer is \\boxed{5}."}]
NONE_PROBE = "<think>\nrehearsal\n</think>\n\nThe answer is \\boxed{0}."


def model_checks(folder: str, eos_token: str | None = None) -> list[tuple]:
    """The model checks on a saved folder; only its tokenizer and generation config are read."""
    from types import SimpleNamespace

    from transformers import GenerationConfig

    from pipeline.training import models

    tokenizer = models.load_tokenizer(folder)
    model = SimpleNamespace(generation_config=GenerationConfig.from_pretrained(folder))  # all the checks touch
    models.prepare_for_chat(model, tokenizer)
    out = [_template(tokenizer), _thinking(tokenizer)]
    try:
        if eos_token:
            models.set_turn_end(model, tokenizer, eos_token)
        models.check_eos_agreement(tokenizer, model.generation_config, source="model")
        out.append(("turn end = eos = stop", True, f"{models.turn_end_token(tokenizer)!r}"))
    except (models.EOSMismatchError, ValueError) as error:
        out.append(("turn end = eos = stop", False, str(error).replace("model: ", "", 1)))
    out += [_think_tags(tokenizer), _bos(tokenizer)]
    return out


def _template(tokenizer) -> tuple:
    text = tokenizer.apply_chat_template(PROBE, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    back = tokenizer.decode(ids, skip_special_tokens=False)
    return ("template renders, round-trips", back == text, f"{len(ids)} tokens" if back == text else
            f"decode(encode(text)) differs: {back[:60]!r} vs {text[:60]!r}")


def _thinking(tokenizer) -> tuple:
    text = tokenizer.apply_chat_template(PROBE, tokenize=False)
    kept = "Two plus three is five." in text
    return ("assistant thinking kept by template", True if kept else None,
            "kept" if kept else "the template drops the thinking of assistant turns: sft must train on "
            "prompt/completion pairs (it checks)")


def _think_tags(tokenizer) -> tuple:
    sizes = {tag: len(tokenizer(tag, add_special_tokens=False)["input_ids"]) for tag in ("<think>", "</think>")}
    single = all(n == 1 for n in sizes.values())
    return ("think tags are single tokens", True if single else None,
            "yes" if single else f"{sizes} tokens (add_think_tokens: true adds them)")


def _bos(tokenizer) -> tuple:
    if tokenizer.bos_token_id is None:
        return ("one BOS", True, "the tokenizer has no BOS")
    ids = tokenizer.apply_chat_template(PROBE[:1], add_generation_prompt=True, tokenize=True, return_dict=True)
    count = list(ids["input_ids"]).count(tokenizer.bos_token_id)
    return ("one BOS", count <= 1, f"{count} BOS in a tokenized chat prompt")


def truncation_check(lengths: list[int], max_length: int | None) -> tuple:
    if not lengths:
        return ("real max_length truncates", None, "no rows sampled")
    if not max_length:
        return ("real max_length truncates", None, f"no max_length; longest sampled row {max(lengths)} tokens")
    cut = sum(n > max_length for n in lengths)
    return ("real max_length truncates", cut == 0 if cut == 0 else None,
            f"{cut}/{len(lengths)} sampled rows longer than {max_length} tokens (longest {max(lengths)})")


def trace_lengths(dataset, tokenizer, system_prompt: str | None = None) -> list[int]:
    """Tokens of each trace as a prompt (through the chat template) plus its whole response and a turn end: the
    length training sees when the thinking is kept, whatever the template does to assistant turns."""
    from pipeline.training.sft_data import to_messages

    lengths = []
    for i, row in enumerate(dataset):
        messages = to_messages(row, False, system_prompt, where=f"row {i}")
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        response = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        lengths.append(len(prompt) + len(response) + 1)
    return lengths


def reward_none_check(specs: list[dict], dataset) -> tuple:
    """The share of sampled rows every reward can judge: a None means the row's gold answer does not parse."""
    import rewards

    columns = {c: dataset[c] for c in dataset.column_names if c not in ("prompt", "completion")}
    completions = [[{"role": "assistant", "content": NONE_PROBE}] for _ in range(len(dataset))]
    worst = []
    for spec in specs:
        if isinstance(spec.get("model"), str):
            continue  # a reward model always scores; the policy's samples are what it judges
        fn = rewards.build_reward(spec)
        scores = fn(completions=completions, prompts=columns.get("prompt"), **columns)
        nones = sum(score is None for score in scores)
        worst.append((nones, fn.__name__))
    nones, name = max(worst) if worst else (0, "-")
    return ("rewards score the sampled rows", nones == 0,
            f"{len(dataset) - nones}/{len(dataset)} rows judged" + (f" (None from {name})" if nones else ""))


def resume_check(metrics: dict, max_steps: int) -> tuple:
    resumed = metrics.get("resumed_from")
    step = metrics.get("global_step")
    ok = bool(resumed) and step == max_steps
    return ("resumed from checkpoint", ok, f"resumed from {resumed}, ended at step {step} of {max_steps}")


def reload_check(folder: str, kind: str) -> tuple:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from rewards.tokenizer import fresh_tokenizer

    auto = AutoModelForSequenceClassification if kind == "reward_model" else AutoModelForCausalLM
    try:
        auto.from_pretrained(folder)
        fresh_tokenizer(folder)
        return ("saved model reloads", True, folder.rsplit("/", 2)[-2] + "/model")
    except (OSError, ValueError) as error:
        return ("saved model reloads", False, str(error).splitlines()[0])
