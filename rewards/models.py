"""Scoring text with a sequence-classification model (a reward model or a classifier), loaded once per process.

torch and transformers are imported on first use, so ``import rewards`` stays cheap for the rule-based rewards.
"""

from __future__ import annotations

import logging
import math
import threading

from .text import prompt_text
from .tokenizer import fresh_tokenizer

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_scorers: dict[tuple[str, str], tuple[object, object]] = {}


def load_scorer(model: str, device: str = "cpu"):
    """(model, tokenizer) of ``AutoModelForSequenceClassification`` at ``model``, in eval mode on ``device``, cached.

    The tokenizer pads on the right (Llama-style classifiers score the last non-pad token and take positions from
    the left, so right padding gives batched scores equal to one-by-one ones) and truncates on the left (what is
    cut is the start of the prompt, never the end of the answer being scored). A tokenizer without a pad token pads
    with its end-of-sequence token, and the model's ``pad_token_id`` is set to match.
    """
    key = (str(model), str(device))
    with _lock:
        if key not in _scorers:
            from transformers import AutoModelForSequenceClassification

            tokenizer = fresh_tokenizer(model)
            if tokenizer.pad_token is None:
                if tokenizer.eos_token is None:
                    raise ValueError(f"Reward model '{model}': its tokenizer has neither a pad nor an eos token")
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "right"
            tokenizer.truncation_side = "left"
            network = AutoModelForSequenceClassification.from_pretrained(model).to(device).eval()
            if network.config.pad_token_id is None:
                network.config.pad_token_id = tokenizer.pad_token_id
            _scorers[key] = (network, tokenizer)
        return _scorers[key]


def prompt_messages(prompt) -> list[dict]:
    """A prompt as chat messages: a string is one user turn; message lists keep role and text content."""
    if prompt is None or prompt == "":
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)):
        return [{"role": m.get("role", "user"), "content": prompt_text([m])} for m in prompt if isinstance(m, dict)]
    return [{"role": "user", "content": str(prompt)}]


def render(tokenizer, prompts: list, responses: list[str]) -> tuple[list[str], bool]:
    """(texts to score, whether they already hold their special tokens) for prompt/response pairs.

    When the tokenizer has a chat template and every pair has a prompt: ``apply_chat_template(prompt messages +
    [assistant response])``. Otherwise "prompt\\n\\nresponse" (the bare response when there is no prompt), and
    the tokenizer adds its special tokens. One rule per call, so a batch is tokenized one way.
    """
    messages = [prompt_messages(p) for p in prompts]
    if getattr(tokenizer, "chat_template", None) and all(messages):
        texts = [
            tokenizer.apply_chat_template(m + [{"role": "assistant", "content": r}], tokenize=False)
            for m, r in zip(messages, responses)
        ]
        return texts, True
    heads = [prompt_text(p) for p in prompts]
    return [f"{h}\n\n{r}" if h else r for h, r in zip(heads, responses)], False


def label_index(network, label) -> int | None:
    """Which logit scores: None for a one-logit reward model, else the index of ``label`` (an index or a name)."""
    labels = network.config.num_labels
    if labels == 1 and label is None:
        return None
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < labels:
        return label
    names = {str(name).lower(): int(i) for i, name in (network.config.id2label or {}).items()}
    if isinstance(label, str) and label.lower() in names:
        return names[label.lower()]
    raise ValueError(f"The reward model has {labels} labels {sorted(names)}; set label= to one of them or its index")


def score(network, tokenizer, prompts: list, responses: list[str], batch_size: int, max_length: int, label=None):
    """Raw scores of (prompt, response) pairs (see ``render``), in batches of ``batch_size``, without gradients.

    A one-logit model gives its logit. A classifier gives the log-odds of ``label``: its logit minus the log-sum-exp
    of the others, so that sigmoid(score) is exactly the softmax probability of that label.

    Never raises on a text: lone surrogates (which the tokenizer rejects) become U+FFFD first; a text that
    tokenizes to nothing (an empty response with no prompt and no special tokens to add) scores None; a batch
    that fails is scored one text at a time, and a text that fails alone scores None (with a warning).
    """
    index = label_index(network, label)
    texts, templated = render(tokenizer, prompts, responses)
    texts = [_clean(text) for text in texts]
    scores: list[float | None] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        try:
            scores += _score_batch(network, tokenizer, batch, max_length, templated, index)
        except Exception as error:  # noqa: BLE001 - one bad text must not cost the batch its scores
            logger.warning("reward model failed on a batch of %d (%s); scoring its texts one by one", len(batch),
                           error)
            scores += [_score_one(network, tokenizer, text, max_length, templated, index) for text in batch]
    return scores


def _clean(text: str) -> str:
    """``text`` with lone surrogates (invalid in UTF-8, a TypeError in the tokenizer) replaced by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _score_one(network, tokenizer, text: str, max_length: int, templated: bool, index) -> float | None:
    try:
        return _score_batch(network, tokenizer, [text], max_length, templated, index)[0]
    except Exception as error:  # noqa: BLE001 - a reward scores a completion or says it cannot (None)
        logger.warning("reward model cannot score a text of %d characters (%s); its score is None", len(text), error)
        return None


def _score_batch(network, tokenizer, texts: list[str], max_length: int, templated: bool, index) -> list:
    """Scores of ``texts``, None for those that tokenize to no token at all (there is nothing to score) or that
    the model scores NaN or infinite."""
    import torch

    encoded = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=not templated)
    keep = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > 0]
    out: list[float | None] = [None] * len(texts)
    if not keep:
        return out
    rows = [encoded["input_ids"][i] for i in keep]
    width = max(map(len, rows))  # padded on the right, as load_scorer sets the tokenizer to
    ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    device = next(network.parameters()).device
    with torch.inference_mode():
        logits = network(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    if index is None:
        values = logits[:, 0]
    else:
        others = logits.clone()
        others[:, index] = -math.inf
        values = logits[:, index] - others.logsumexp(dim=-1)
    for i, value in zip(keep, values.tolist()):
        out[i] = value if math.isfinite(value) else None  # a NaN score would poison the advantages of its group
    return out
