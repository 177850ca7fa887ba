"""The accuracy reward on a labelled corpus of ~2,600 completions over MATH-500 and GSM8K gold answers
(tests/verifier_corpus.py): it pays no hack and no wrong answer, and refuses under 1% of the correct forms."""

import json

import pytest

from rewards import build_reward
from tests.verifier_corpus import FIXTURE, HACKS, build_corpus, load_golds


@pytest.fixture(scope="module")
def corpus():
    return build_corpus()


def test_corpus_is_deterministic_labelled_and_covers_every_kind(corpus):
    header = json.loads(FIXTURE.read_text().splitlines()[0])["_header"]
    assert "MIT" in header and "MATH-500" in header and "grade-school-math" in header
    golds = load_golds()
    assert len(golds) >= 400 and {g["source"] for g in golds} == {"math500", "gsm8k_test"}
    assert len(corpus) >= 2400 and corpus == build_corpus()
    kinds = {row["kind"] for row in corpus}
    assert set(HACKS) <= kinds and "wrong" in kinds
    correct = [row for row in corpus if row["correct"]]
    assert len(correct) == len(corpus) // 2
    assert {"money_box", "dollars_bare", "dfrac", "slash", "thousands", "answer_tag", "answer_is", "chat"} <= {
        row["kind"] for row in correct}
    assert all(not row["correct"] for row in corpus if row["kind"] in HACKS)


def _describe(row, score) -> str:
    text = row["completion"] if isinstance(row["completion"], str) else row["completion"][-1]["content"]
    return f"{row['kind']}: gold {row['gold']!r} scored {score}: ...{text[-120:]!r}"


def test_accuracy_pays_no_hack_and_refuses_under_one_percent_of_correct_forms(corpus):
    accuracy = build_reward({"name": "accuracy", "timeout_s": 5.0})
    scores = []
    for start in range(0, len(corpus), 64):  # as GRPO calls it: a batch with its gold column
        batch = corpus[start : start + 64]
        scores += accuracy([row["completion"] for row in batch], gold_answer=[row["gold"] for row in batch])
    assert all(score in (0.0, 1.0) for score in scores), "every gold in the corpus parses"
    paid = [_describe(row, s) for row, s in zip(corpus, scores) if not row["correct"] and s == 1.0]
    refused = [_describe(row, s) for row, s in zip(corpus, scores) if row["correct"] and s != 1.0]
    assert not paid, f"{len(paid)} incorrect completions paid:\n" + "\n".join(paid)
    correct = sum(row["correct"] for row in corpus)
    assert len(refused) < 0.01 * correct, f"{len(refused)} of {correct} correct refused:\n" + "\n".join(refused)
