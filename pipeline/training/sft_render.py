"""How one chat example becomes the tokens the sft stage trains on, and the check that they still hold the thinking.

Two renderings:

- assistant: TRL applies the chat template to the whole conversation and trains on the `{% generation %}` span.
  Right for our template, wrong for any template that rewrites an assistant turn: DeepSeek-R1-Distill's and
  Qwen3's keep only `content.split('</think>')[-1]`, so the thinking is silently dropped from what is trained.
- prompt/completion (TRL's prompt-completion format, tokenized here): prompt = the template applied to the turns
  before the reply with the generation prompt; completion = the reply after what that generation prompt already
  wrote (`<think>\\n` for R1 templates: the tag is not doubled), then the turn-end token. The reply never goes through
  the template, and the tokens are those the model sees at inference (prompt ids, then its own tokens).

`check_rendered_example` decodes the trained-on tokens of one example through the exact path the stage uses and
raises one line unless they hold the example's thinking, its answer after the thinking and the turn end, with one
BOS for families that use one. The stage calls it before training; a rehearsal can call it on its own.
"""

from __future__ import annotations

from pipeline.data.schema import THINK_CLOSE, THINK_OPEN, split_response
from pipeline.training import models


def training_template(tokenizer) -> str | None:
    """The template TRL's assistant_only_loss renders with: the tokenizer's own when it has {% generation %}
    markers, else TRL's patched copy of a template it knows (None when it knows none)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return tokenizer.chat_template
    try:
        return get_training_chat_template(tokenizer)
    except ValueError:
        return None


def turn_end_id(tokenizer) -> int:
    """The token that ends an assistant turn in the template (the eos when the template does not tell)."""
    token = models.turn_end_token(tokenizer) or tokenizer.eos_token
    return tokenizer.convert_tokens_to_ids(token)


def completion_text(response: str, generation_prompt: str) -> str:
    """What the model writes after `generation_prompt`: a `<think>` the prompt already opened is not written again;
    an answers-only reply after an opened think block first closes it (else it would answer inside the block)."""
    if not generation_prompt.rstrip().endswith(THINK_OPEN):
        return response
    prefilled = generation_prompt[generation_prompt.rfind(THINK_OPEN) + len(THINK_OPEN):]  # "\n" for R1
    body = response.lstrip()
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN):]
        return body.removeprefix(prefilled)
    return body if THINK_CLOSE in body else f"{THINK_CLOSE}\n{body}"


def tokenize_prompt_completion(tokenizer, messages: list[dict], end_id: int, bos: bool) -> dict:
    """{input_ids, completion_mask} of one conversation: all turns but the last as the prompt, the last (an
    assistant reply) as the completion, ended by `end_id`."""
    prompt = messages[:-1]
    with_generation = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    without = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=False)
    generation_prompt = with_generation.removeprefix(without)
    prompt_ids = models.encode_prompt(tokenizer, with_generation, bos)
    completion = completion_text(messages[-1]["content"], generation_prompt)
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [end_id]
    return {"input_ids": prompt_ids + completion_ids,
            "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids)}


def tokenize_dataset(data, tokenizer, keep_messages: bool = False, max_length: int | None = None):
    """`messages` rows -> pre-tokenized prompt/completion rows (SFTTrainer and GKD's collator then skip their own
    tokenization); `max_length` cuts each row's end, as SFTTrainer's truncation does."""
    end_id, bos = turn_end_id(tokenizer), models.uses_bos(tokenizer)

    def tokenize(row):
        out = tokenize_prompt_completion(tokenizer, row["messages"], end_id, bos)
        return {k: v[:max_length] for k, v in out.items()} if max_length else out

    drop = [c for c in data.column_names if not (keep_messages and c == "messages")]
    return data.map(tokenize, remove_columns=drop, desc="Tokenizing prompt/completion pairs")


def trained_tokens(tokenizer, messages: list[dict], mode: str) -> tuple[list[int], list[int]]:
    """(input ids, the ids the loss covers) of one example, rendered exactly as the stage renders it in `mode`."""
    if mode == "assistant":
        out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, chat_template=training_template(
            tokenizer), return_assistant_tokens_mask=True)
        return out["input_ids"], [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    row = tokenize_prompt_completion(tokenizer, messages, turn_end_id(tokenizer), models.uses_bos(tokenizer))
    if mode == "full":
        return row["input_ids"], row["input_ids"]
    return row["input_ids"], [t for t, m in zip(row["input_ids"], row["completion_mask"]) if m]


def _squash(text: str) -> str:
    return " ".join(text.split())  # templates may re-space around the tags (Qwen3 writes "</think>\n\n")


def problems(tokenizer, messages: list[dict], ids: list[int], trained: list[int]) -> list[str]:
    """What the trained-on tokens lost of the example's reply (empty when nothing)."""
    thinking, answer = split_response(messages[-1]["content"])
    text = tokenizer.decode(trained)
    found = []
    if thinking and _squash(thinking) not in _squash(text.rpartition(THINK_CLOSE)[0]):
        found.append(f"its thinking ({len(thinking)} chars)")
    after = text.rpartition(THINK_CLOSE)[2] if thinking else text
    if _squash(answer) not in _squash(after):
        found.append(f"its answer {answer[:40]!r}" + (" after the thinking" if thinking else ""))
    end_id = turn_end_id(tokenizer)
    # the turn end must be trained; whitespace the template writes after it may be too (TRL's Qwen3 template)
    if end_id not in trained or tokenizer.decode(trained[len(trained) - trained[::-1].index(end_id):]).strip():
        found.append(f"the turn end {tokenizer.convert_ids_to_tokens(end_id)!r}")
    bos = tokenizer.bos_token_id
    if models.uses_bos(tokenizer) and (ids[:1] != [bos] or ids.count(bos) != 1):
        found.append(f"exactly one BOS (it has {ids.count(bos)})")
    return found


def check_rendered_example(tokenizer, messages: list[dict], mode: str = "completion") -> str:
    """Raise a one-line ValueError unless the tokens trained on for `messages` in `mode` keep the reply's thinking,
    its answer and the turn end (and one BOS where the family uses it); return what was checked, for the log."""
    ids, trained = trained_tokens(tokenizer, messages, mode)
    lost = problems(tokenizer, messages, ids, trained)
    name = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    if lost:
        raise ValueError(
            f"sft: the chat template of {name} renders an example so that the tokens trained on ({mode} loss, "
            f"{len(trained)} tokens: {tokenizer.decode(trained)[:60]!r}) lose {', '.join(lost)}; fix: train on "
            "prompt/completion pairs (leave trainer.assistant_only_loss unset: the sft stage renders the reply "
            "itself, never through the template) or use a template that keeps the last assistant turn whole")
    thinking, answer = split_response(messages[-1]["content"])
    return (f"{mode} loss over {len(trained)} of {len(ids)} tokens keeps the thinking ({len(thinking or '')} chars), "
            f"the answer {answer[:40]!r} and the turn end {tokenizer.convert_ids_to_tokens(turn_end_id(tokenizer))!r}"
            + (f"; one BOS {tokenizer.bos_token!r}" if models.uses_bos(tokenizer) else "; no BOS (the family has none)"))
