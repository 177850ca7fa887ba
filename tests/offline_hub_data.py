"""Small datasets in the public schemas of the hub datasets the shipped recipes read, for tests/offline_hub.py.

The rows are synthetic (generated arithmetic and algebra problems with R1-style traces, and short chats), but each
column has the public dataset's name and type: a recipe or adapter that reads a column the real data lacks, or
reads it as the wrong type, fails here as it would on the real data. Schemas, from the dataset cards on the hub:

- DigitalLearningGmbH/MATH-lighteval (train, test): problem, level, solution, type: strings.
- open-r1/OpenR1-Math-220k (config default, train): problem, solution, answer, problem_type, question_type, source,
  uuid: strings; is_reasoning_complete, correctness_math_verify: list[bool]; generations: list[str];
  correctness_llama: list[bool] or null; finish_reasons: list[str] or null; correctness_count: int64;
  messages: list[{content, role}].
- simplescaling/s1K-1.1 (train): solution, question, cot_type, source_type, metadata, gemini_thinking_trajectory,
  gemini_attempt, deepseek_thinking_trajectory, deepseek_attempt, gemini_grade, gemini_grade_reason,
  deepseek_grade, deepseek_grade_reason: strings.
- HuggingFaceH4/ultrachat_200k (train_sft, test_sft): prompt, prompt_id: strings; messages: list[{content, role}].
- HuggingFaceH4/ultrafeedback_binarized (train_prefs, test_prefs): prompt, prompt_id: strings; chosen, rejected,
  messages: list[{content, role}]; score_chosen, score_rejected: float64.
"""

from __future__ import annotations

import hashlib
import io
import random
import tempfile
import uuid
from pathlib import Path

import datasets
from datasets import Features, List, Value

STR, MESSAGES = Value("string"), [{"content": Value("string"), "role": Value("string")}]
SCHEMAS = {
    "DigitalLearningGmbH/MATH-lighteval": Features(
        {"problem": STR, "level": STR, "solution": STR, "type": STR}),
    "open-r1/OpenR1-Math-220k": Features(
        {"problem": STR, "solution": STR, "answer": STR, "problem_type": STR, "question_type": STR, "source": STR,
         "uuid": STR, "is_reasoning_complete": List(Value("bool")), "generations": List(STR),
         "correctness_math_verify": List(Value("bool")), "correctness_llama": List(Value("bool")),
         "finish_reasons": List(STR), "correctness_count": Value("int64"), "messages": MESSAGES}),
    "simplescaling/s1K-1.1": Features({name: STR for name in (
        "solution", "question", "cot_type", "source_type", "metadata", "gemini_thinking_trajectory", "gemini_attempt",
        "deepseek_thinking_trajectory", "deepseek_attempt", "gemini_grade", "gemini_grade_reason", "deepseek_grade",
        "deepseek_grade_reason")}),
    "HuggingFaceH4/ultrachat_200k": Features({"prompt": STR, "prompt_id": STR, "messages": MESSAGES}),
    "HuggingFaceH4/ultrafeedback_binarized": Features(
        {"prompt": STR, "prompt_id": STR, "chosen": MESSAGES, "rejected": MESSAGES, "messages": MESSAGES,
         "score_chosen": Value("float64"), "score_rejected": Value("float64")}),
}
SPLITS = {  # rows per split
    "DigitalLearningGmbH/MATH-lighteval": {"train": 48, "test": 16},
    "open-r1/OpenR1-Math-220k": {"train": 32},
    "simplescaling/s1K-1.1": {"train": 24},
    "HuggingFaceH4/ultrachat_200k": {"train_sft": 32, "test_sft": 8},
    "HuggingFaceH4/ultrafeedback_binarized": {"train_prefs": 32, "test_prefs": 8},
}
# The public splits' sizes, as each dataset's hub README states them in its `dataset_info` (what a rehearsal reads
# to project a full-scale cost; the fixture itself holds only the rows above).
PUBLIC_SIZES = {
    "DigitalLearningGmbH/MATH-lighteval": {"train": 7500, "test": 5000},
    "open-r1/OpenR1-Math-220k": {"train": 93733},
    "simplescaling/s1K-1.1": {"train": 1000},
    "HuggingFaceH4/ultrachat_200k": {"train_sft": 207865, "test_sft": 23110},
    "HuggingFaceH4/ultrafeedback_binarized": {"train_prefs": 61135, "test_prefs": 2000},
}
MATH_TYPES = ["Algebra", "Prealgebra", "Number Theory", "Counting & Probability"]


def problem(rng: random.Random) -> dict:
    """One generated problem: statement, answer, worked steps and MATH-style type."""
    kind = rng.choice(MATH_TYPES)
    a, b, c = rng.randint(2, 12), rng.randint(1, 40), rng.randint(2, 9)
    if kind == "Algebra":
        x = rng.randint(-9, 15)
        return {"type": kind, "problem": f"Solve for $x$: ${a}x + {b} = {a * x + b}$.", "answer": str(x),
                "steps": [f"Subtract {b} from both sides: ${a}x = {a * x}$.", f"Divide by {a}: $x = {x}$."]}
    if kind == "Prealgebra":
        return {"type": kind, "problem": f"What is ${a} \\times {b} + {c}$?", "answer": str(a * b + c),
                "steps": [f"First ${a} \\times {b} = {a * b}$.", f"Then ${a * b} + {c} = {a * b + c}$."]}
    if kind == "Number Theory":
        n = a * b + c
        return {"type": kind, "problem": f"What is the remainder when ${n}$ is divided by ${a + c}$?",
                "answer": str(n % (a + c)),
                "steps": [f"${n} = {a + c} \\cdot {n // (a + c)} + {n % (a + c)}$."]}
    n, k = a + 2, min(c, a)
    count = _choose(n, k)
    return {"type": kind, "problem": f"In how many ways can a committee of {k} be chosen from {n} people?",
            "answer": str(count), "steps": [f"This is $\\binom{{{n}}}{{{k}}} = {count}$."]}


def _choose(n: int, k: int) -> int:
    out = 1
    for i in range(k):
        out = out * (n - i) // (i + 1)
    return out


def think_trace(p: dict, answer: str, complete: bool = True) -> str:
    thinking = "Okay, let me work through this. " + " ".join(p["steps"]) + " Let me double-check: that holds."
    if not complete:
        return "<think>\n" + thinking[: len(thinking) // 2]
    return f"<think>\n{thinking}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."


def math_lighteval(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        p = problem(rng)
        rows.append({"problem": p["problem"], "level": f"Level {rng.randint(1, 5)}",
                     "solution": " ".join(p["steps"]) + f" The answer is $\\boxed{{{p['answer']}}}$.",
                     "type": p["type"]})
    return rows


def openr1_math(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        p = problem(rng)
        generations, verdicts, complete = [], [], []
        for g in range(rng.randint(2, 4)):  # the first is always right: every problem has a correct trace
            done = g == 0 or rng.random() > 0.2
            wrong = g > 0 and done and rng.random() < 0.4
            answer = str(int(p["answer"]) + 1) if wrong else p["answer"]
            generations.append(think_trace(p, answer, complete=done))
            verdicts.append(done and not wrong)
            complete.append(done)
        judged = i % 4 == 0  # the Llama judge was asked for some problems only
        rows.append({
            "problem": p["problem"], "solution": " ".join(p["steps"]), "answer": p["answer"],
            "problem_type": {"Counting & Probability": "Combinatorics"}.get(p["type"], p["type"]),
            "question_type": "math-word-problem", "source": rng.choice(["olympiads", "cn_contest", "aops_forum"]),
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "is_reasoning_complete": complete,
            "generations": generations, "correctness_math_verify": verdicts,
            "correctness_llama": list(verdicts) if judged else None,
            "finish_reasons": ["stop" if c else "length" for c in complete] if i % 2 else None,
            "correctness_count": sum(verdicts),
            "messages": [{"content": p["problem"], "role": "user"}, {"content": generations[0], "role": "assistant"}],
        })
    return rows


def s1k(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        p = problem(rng)
        right = rng.random() > 0.25
        attempt = p["answer"] if right else str(int(p["answer"]) - 1)
        trace = "Okay, so I need to figure this out. " + " ".join(p["steps"]) + " Wait, let me verify. Yes."
        rows.append({
            "solution": p["answer"], "question": p["problem"], "cot_type": "math",
            "source_type": "synthetic/offline_hub", "metadata": f"{{'type': '{p['type']}'}}",
            "gemini_thinking_trajectory": " ".join(p["steps"]), "gemini_attempt": f"**Answer:** {p['answer']}",
            "deepseek_thinking_trajectory": trace, "deepseek_attempt": f"**Final Answer**\n\\boxed{{{attempt}}}",
            "gemini_grade": "Yes", "gemini_grade_reason": "The attempt matches the solution.",
            "deepseek_grade": "Yes" if right else "No",
            "deepseek_grade_reason": "Matches." if right else f"{attempt} is not {p['answer']}.",
        })
    return rows


TOPICS = ["tide pools", "sourdough starters", "the history of the bicycle", "learning a second language",
          "composting at home", "how bridges carry loads", "planning a week of meals", "caring for a succulent"]


def chat(rng: random.Random, turns: int) -> list[dict]:
    topic = rng.choice(TOPICS)
    messages = [{"content": f"Can you tell me something useful about {topic}?", "role": "user"}]
    for t in range(turns):
        messages.append({"content": f"Here is point {t + 1} about {topic}: start small, observe, and adjust.",
                         "role": "assistant"})
        if t + 1 < turns:
            messages.append({"content": "Thanks. Could you expand on that?", "role": "user"})
    return messages


def _prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


def ultrachat(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        messages = chat(rng, rng.randint(1, 3))
        rows.append({"prompt": messages[0]["content"], "prompt_id": _prompt_id(messages[0]["content"]),
                     "messages": messages})
    return rows


def ultrafeedback(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        prompt = chat(rng, 1)[0]["content"]
        good = f"{prompt.split('about ')[-1][:-1].capitalize()}: here are three concrete, checked tips."
        chosen = [{"content": prompt, "role": "user"}, {"content": good, "role": "assistant"}]
        rejected = [{"content": prompt, "role": "user"}, {"content": "I don't know.", "role": "assistant"}]
        score = float(rng.randint(6, 10))
        rows.append({"prompt": prompt, "prompt_id": _prompt_id(prompt), "chosen": chosen, "rejected": rejected,
                     "messages": chosen, "score_chosen": score, "score_rejected": score - rng.randint(1, 5)})
    return rows


GENERATORS = {"DigitalLearningGmbH/MATH-lighteval": math_lighteval, "open-r1/OpenR1-Math-220k": openr1_math,
              "simplescaling/s1K-1.1": s1k, "HuggingFaceH4/ultrachat_200k": ultrachat,
              "HuggingFaceH4/ultrafeedback_binarized": ultrafeedback}


def write_datasets(hf_home: Path) -> None:
    """Each dataset as a hub dataset repo in hf_home/hub and prepared as Arrow in hf_home/datasets."""
    from tests.offline_hub import write_repo

    for index, (repo_id, splits) in enumerate(SPLITS.items()):
        rng = random.Random(index)
        files = {"README.md": _readme(repo_id, list(splits)).encode()}
        for split, n in splits.items():
            table = datasets.Dataset.from_list(GENERATORS[repo_id](rng, n), features=SCHEMAS[repo_id])
            buffer = io.BytesIO()
            table.to_parquet(buffer)
            files[f"data/{split}-00000-of-00001.parquet"] = buffer.getvalue()
        snapshot = write_repo(Path(hf_home) / "hub", "dataset", repo_id, files)
        prepare_arrow_cache(snapshot, repo_id, Path(hf_home) / "datasets")


def _readme(repo_id: str, splits: list[str]) -> str:
    files = "".join(f"  - split: {split}\n    path: data/{split}-*\n" for split in splits)
    sizes = "".join(f"  - name: {split}\n    num_examples: {PUBLIC_SIZES[repo_id][split]}\n" for split in splits)
    return (f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}dataset_info:\n  config_name: default\n"
            f"  splits:\n{sizes}---\n\n# {repo_id} (offline test fixture)\n\n"
            "Synthetic rows in the public schema; written by tests/offline_hub_data.py. `dataset_info` states the public "
            "splits' sizes, as the real README does.\n")


def prepare_arrow_cache(snapshot: Path, repo_id: str, cache_dir: Path) -> None:
    """What `load_dataset(repo_id)` leaves in the datasets cache when run online: the parquet builder, named after the
    repo and hashed by its commit, prepared into cache_dir/<org>___<name>/default/0.0.0/<commit>/."""
    from datasets.load import LocalDatasetModuleFactory, get_dataset_builder_class
    from datasets.naming import camelcase_to_snakecase

    module = LocalDatasetModuleFactory(str(snapshot)).get_module()
    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    target = cache_dir / f"{repo_id.split('/')[0]}___{name}" / "default" / "0.0.0" / snapshot.name
    # With repo_id the builder would insist on hf:// data files, and without it it names its folder without the
    # namespace: so it is built without, and prepared straight into the folder an online load of repo_id uses.
    with tempfile.TemporaryDirectory() as scratch:
        builder = get_dataset_builder_class(module, dataset_name=name)(
            cache_dir=scratch, dataset_name=name, config_name="default", hash=snapshot.name, base_path=str(snapshot))
        builder.download_and_prepare(output_dir=str(target))
