"""helpfulness / harmlessness with a tiny offline reward model, and the LLM judge against a local HTTP server."""

import json
import logging
import os
from typing import ClassVar

import pytest

from rewards import build_reward
from rewards.judge import parse_score
from tests.helpers import QuietHandler, local_server

# Offline before huggingface_hub is first imported (it reads these at import); rewards imports it lazily.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch = pytest.importorskip("torch")

CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!?+-*/=()[]{}<>\\|_'\"\n#$%&@^~`")
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"


def save_tiny_reward_model(path, chat_template=None, num_labels=1):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[BOS]", "[EOS]", *CHARS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]",
                                        bos_token="[BOS]", eos_token="[EOS]")
    if chat_template:
        tokenizer.chat_template = chat_template
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         num_labels=num_labels, pad_token_id=vocab["[PAD]"], initializer_range=0.2)
    model = LlamaForSequenceClassification(config)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("reward_models")
    return {
        "plain": save_tiny_reward_model(root / "plain"),
        "chat": save_tiny_reward_model(root / "chat", chat_template=CHAT_TEMPLATE),
        "classifier": save_tiny_reward_model(root / "classifier", num_labels=3),
    }


COMPLETIONS = [
    "<think>a long chain of thought</think>The answer is 4.",
    "<think>short</think>The answer is 4.",  # same answer, different thinking
    "<think>hmm</think>It is 5, because 2+3=5.",
    [{"role": "assistant", "content": "<think>x</think>Paris."}],
    "no think block at all",
]
PROMPTS = ["What is 2+2?", "What is 2+2?", "What is 2+3?", [{"role": "user", "content": "Capital of France?"}], "Hi"]


@pytest.mark.parametrize("kind", ["plain", "chat"])
def test_helpfulness_batches_like_one_by_one_and_ignores_thinking(reward_models, kind):
    batched = build_reward({"name": "helpfulness", "model": reward_models[kind], "batch_size": 3})
    single = build_reward({"name": "helpfulness", "model": reward_models[kind], "batch_size": 1})
    scores = batched(COMPLETIONS, prompts=PROMPTS)
    one_by_one = [single([c], prompts=[p])[0] for c, p in zip(COMPLETIONS, PROMPTS)]
    assert scores == pytest.approx(one_by_one, abs=1e-5)
    assert all(0.0 < s < 1.0 for s in scores)
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)  # thinking removed
    assert len({round(s, 6) for s in scores}) >= 4  # the model does look at the text
    from_problem = batched(COMPLETIONS[:2], problem=PROMPTS[:2])
    assert from_problem == pytest.approx(scores[:2], abs=1e-5)


def test_helpfulness_normalizations(reward_models):
    raw = build_reward({"name": "helpfulness", "model": reward_models["plain"], "normalize": "none"})(
        COMPLETIONS, prompts=PROMPTS)
    z = build_reward({"name": "helpfulness", "model": reward_models["plain"], "normalize": "zscore"})(
        COMPLETIONS, prompts=PROMPTS)
    assert sum(z) == pytest.approx(0.0, abs=1e-6)
    assert sum(v * v for v in z) / len(z) == pytest.approx(1.0, abs=1e-6)
    assert sorted(range(5), key=raw.__getitem__) == sorted(range(5), key=z.__getitem__)


def test_harmlessness_model_sees_the_thinking(reward_models):
    fn = build_reward({"name": "harmlessness", "model": reward_models["plain"]})
    scores = fn(COMPLETIONS, prompts=PROMPTS)
    assert all(0.0 < s < 1.0 for s in scores)
    assert scores[0] != pytest.approx(scores[1], abs=1e-6)


def test_classifier_label_probability(reward_models):
    probabilities = []
    for label in range(3):
        fn = build_reward({"name": "harmlessness", "model": reward_models["classifier"], "label": label})
        probabilities.append(fn(COMPLETIONS[:2], prompts=PROMPTS[:2]))
    for i in range(2):
        assert sum(p[i] for p in probabilities) == pytest.approx(1.0, abs=1e-5)  # softmax over the labels
    by_name = build_reward({"name": "harmlessness", "model": reward_models["classifier"], "label": "LABEL_1"})
    assert by_name(COMPLETIONS[:2], prompts=PROMPTS[:2]) == pytest.approx(probabilities[1], abs=1e-6)
    with pytest.raises(ValueError, match="set label="):
        build_reward({"name": "harmlessness", "model": reward_models["classifier"]})(["x"])


def test_length_rewards_count_tokenizer_tokens(reward_models):
    fn = build_reward({"name": "soft_overlong", "max_len": 10, "cache_len": 4, "tokenizer": reward_models["plain"]})
    assert fn(["abcdef", "abcdefgh", "abcdefghij", "a" * 50]) == [0.0, -0.5, -1.0, -1.0]  # one token per character


class JudgeHandler(QuietHandler):
    seen: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        answer = body["messages"][-1]["content"]
        if "FAIL" in answer:
            self.reply(500)
            return
        grade = "Score: 9" if "Paris" in answer else "The answer is weak. Score: 2/10"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": grade}}]}).encode()
        self.reply(200, payload, {"Content-Type": "application/json"})


@pytest.fixture
def judge_server(monkeypatch):
    JudgeHandler.seen = []
    with local_server(JudgeHandler, monkeypatch) as url:
        yield url


def test_judge_scores_with_bearer_key_never_logged(judge_server, monkeypatch, caplog, capsys):
    secret = "sk-test-very-secret-123"
    monkeypatch.setenv("RF_JUDGE_KEY", secret)
    fn = build_reward({"name": "helpfulness", "judge": {"base_url": judge_server, "model": "judge-1",
                                                        "api_key_env": "RF_JUDGE_KEY", "max_workers": 2}})
    completions = ["<think>secret reasoning</think>Paris.", "<think>x</think>Lyon.", "<think>y</think>FAIL"]
    with caplog.at_level(logging.DEBUG):
        scores = fn(completions, prompts=["Capital of France?"] * 3)
    assert scores == [0.9, 0.2, None]
    assert {r["path"] for r in JudgeHandler.seen} == {"/v1/chat/completions"}
    assert {r["auth"] for r in JudgeHandler.seen} == {f"Bearer {secret}"}
    assert all(r["body"]["model"] == "judge-1" for r in JudgeHandler.seen)
    assert not any("secret reasoning" in json.dumps(r["body"]) for r in JudgeHandler.seen)  # thinking removed
    assert "HTTP 500" in caplog.text
    captured = capsys.readouterr()
    assert secret not in caplog.text + captured.out + captured.err


def test_judge_missing_key_env(judge_server, monkeypatch):
    monkeypatch.delenv("RF_MISSING_KEY", raising=False)
    fn = build_reward({"name": "helpfulness", "judge": {"base_url": judge_server, "model": "m",
                                                        "api_key_env": "RF_MISSING_KEY"}})
    with pytest.raises(ValueError, match="RF_MISSING_KEY"):
        fn(["x"])


def test_judge_unreachable_is_none():
    fn = build_reward({"name": "helpfulness", "judge": {"base_url": "http://127.0.0.1:9/v1", "model": "m",
                                                        "timeout_s": 2}})
    assert fn(["<think>a</think>b"], prompts=["q"]) == [None]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("Score: 7", 0.7), ("**Score:** 10", 1.0), ("I'd say 8/10.", 0.8), ("3", 0.3), ("Score: 11", None),
     ("no grade", None), ("Score: 4 ... on reflection Score: 6", 0.6)],
)
def test_parse_score(reply, expected):
    assert parse_score(reply) == expected


def test_render_uses_the_chat_template_when_there_is_one(reward_models):
    from rewards.models import load_scorer, render

    _, chat = load_scorer(reward_models["chat"])
    _, plain = load_scorer(reward_models["plain"])
    assert render(chat, ["q?"], ["a."]) == (["<|user|>q?\n<|assistant|>a.\n"], True)
    assert render(plain, ["q?"], ["a."]) == (["q?\n\na."], False)
    assert render(chat, [None], ["a."]) == (["a."], False)  # no prompt: the bare response


# Texts a policy can emit that a tokenizer or a model chokes on: lone surrogates (a TypeError in the tokenizer),
# and, with no prompt, an empty answer that tokenizes to nothing (a tensor of 0 elements).
BAD_TEXTS = ["\ud800", "ok \udfff then", "\ud83d", "", "<think>only thinking</think>", "<think>x</think>  "]


@pytest.mark.parametrize("name", ["helpfulness", "harmlessness"])
@pytest.mark.parametrize("kind", ["plain", "chat", "classifier"])
def test_model_rewards_score_bad_texts_and_keep_the_rest(reward_models, name, kind):
    spec = {"name": name, "model": reward_models[kind], "batch_size": 4}
    if kind == "classifier":
        spec["label"] = 1
    fn = build_reward(spec)
    good = ["<think>a</think>The answer is 4.", "<think>b</think>It is 5."]
    alone = fn(good)
    for bad in BAD_TEXTS:
        scores = fn([good[0], bad, good[1]])  # no prompt: the bare response is scored
        assert len(scores) == 3
        assert scores[0] == pytest.approx(alone[0], abs=1e-5) and scores[2] == pytest.approx(alone[1], abs=1e-5)
        assert scores[1] is None or 0.0 < scores[1] < 1.0
    assert fn(["", ""]) == [None, None]  # nothing to score at all: None, not an exception
    assert fn(["\ud800"])[0] is not None  # the surrogate is replaced, the text still scored
    with_prompt = fn(["", "\ud800"], prompts=["What is 2+2?", "Hi \udc00"])
    assert all(s is not None and 0.0 < s < 1.0 for s in with_prompt)  # the prompt alone is something to score


def test_zscore_ignores_texts_that_cannot_be_scored(reward_models):
    fn = build_reward({"name": "helpfulness", "model": reward_models["plain"], "normalize": "zscore"})
    scores = fn(["<think>a</think>4", "", "<think>b</think>five", "<think>c</think>6."])
    assert scores[1] is None
    rest = [s for s in scores if s is not None]
    assert sum(rest) == pytest.approx(0.0, abs=1e-6) and sum(v * v for v in rest) / 3 == pytest.approx(1.0, abs=1e-5)


def test_a_failing_batch_is_scored_one_by_one(reward_models, monkeypatch, caplog):
    from rewards import models

    real = models._score_batch

    def flaky(network, tokenizer, texts, *args):
        if len(texts) > 1 or "boom" in texts[0]:
            raise RuntimeError("boom")
        return real(network, tokenizer, texts, *args)

    monkeypatch.setattr(models, "_score_batch", flaky)
    fn = build_reward({"name": "harmlessness", "model": reward_models["plain"], "batch_size": 8})
    with caplog.at_level(logging.WARNING, logger="rewards.models"):
        scores = fn(["fine", "boom here", "also fine"])
    assert scores[1] is None and all(0.0 < s < 1.0 for s in (scores[0], scores[2]))
    assert "one by one" in caplog.text and "None" in caplog.text


def _fuzz_text():
    from hypothesis import strategies as st

    pieces = st.sampled_from(["\ud800", "\udfff", "\ud83d\ude00", "", " ", "<think>", "</think>", "\x00", "中文",
                              "\n", "The answer is 4.", "\\boxed{", "}", "🙂", "\u202e"])
    return st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=8).map("".join)


def test_model_rewards_never_raise_under_fuzz(reward_models):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    fns = [build_reward({"name": name, "model": reward_models[kind], "batch_size": 3})
           for name in ("helpfulness", "harmlessness") for kind in ("plain", "chat")]
    prompts = st.one_of(st.none(), _fuzz_text(), st.lists(_fuzz_text().map(lambda t: {"role": "user", "content": t}),
                                                           min_size=1, max_size=2))

    @settings(max_examples=25, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(_fuzz_text(), prompts), min_size=1, max_size=6))
    def check(batch):
        completions = [c for c, _ in batch]
        columns = {} if all(p is None for _, p in batch) else {"prompts": [p for _, p in batch]}
        for fn in fns:
            scores = fn(completions, **columns)
            assert len(scores) == len(completions)
            assert all(s is None or 0.0 < s < 1.0 for s in scores)

    check()


def test_a_nan_score_is_none(tmp_path):
    from rewards.models import load_scorer

    path = save_tiny_reward_model(tmp_path / "nan")
    network, tokenizer = load_scorer(path)
    with torch.no_grad():  # one character's embedding poisoned: any text holding it scores NaN
        network.get_input_embeddings().weight[tokenizer.convert_tokens_to_ids("~")] = float("nan")
    scores = build_reward({"name": "harmlessness", "model": path})(["fine", "bad ~ here", "also fine"])
    assert scores[1] is None and all(0.0 < s < 1.0 for s in (scores[0], scores[2]))
