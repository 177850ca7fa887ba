"""Adapters from released chain-of-thought datasets to the canonical trace schema (`pipeline.data.schema`).

An adapter maps one raw row to a list of canonical rows (OpenR1 holds several generations per problem; a row that
`only_correct` rejects maps to none). `columns` names the raw columns it reads, by role; the defaults are the
released datasets' own names and a data card may override them for a renamed mirror. Every response is re-rendered
the R1 way (``<think>\\n...\\n</think>\\n answer``), whatever markers the release used.

The released datasets themselves are named by the cards in `pipeline/data/cards/` (see `pipeline.data.released`):
a card's front matter says where the data is, which adapter maps it, and which raw columns that adapter reads
(`columns`). `load_released(name)` follows the card; `path=` points it at a local copy of the raw data instead.
By default it keeps the traces the release marks correct and complete (`keep="correct"`); `keep="all"` keeps all.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import datasets

from pipeline.data import released
from pipeline.data.errors import DataError
from pipeline.data.schema import TRACE_COLUMNS, split_response, trace_features, trace_row
from pipeline.data.sources import load_rows_or_dataset


def stable_id(source: str, problem: str) -> str:
    """Id of a problem that has none in its release: the dataset name and a hash of the problem text."""
    return f"{source}-{hashlib.sha1(problem.encode()).hexdigest()[:12]}"


def strip_thousands(text: str) -> str:
    """'1,080' -> '1080' for a plain number with thousands separators; anything else unchanged."""
    return text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text) else text


def _pick(row: dict, columns: dict, role: str):
    return row.get(columns[role]) if columns.get(role) else None


OPENR1_COLUMNS = {"id": "uuid", "problem": "problem", "gold_answer": "answer", "generations": "generations",
                  "correct": "correctness_math_verify", "correct_judge": "correctness_llama",
                  "finish_reasons": "finish_reasons", "complete": "is_reasoning_complete"}


def openr1_math(row: dict, *, source: str, columns: dict | None = None, only_correct: bool = False) -> list[dict]:
    """OpenR1-Math-220k: one canonical row per generation (`sample_index` = its position).

    verified = correctness_math_verify[i], or correctness_llama[i] where the release has it: the release judged
    ~12% of the problems with Llama-3.3-70B because Math Verify could not parse them, and counts either as correct.
    finish_reason comes from finish_reasons[i], else from is_reasoning_complete[i] ('stop'/'length').
    """
    columns = {**OPENR1_COLUMNS, **(columns or {})}
    problem = _pick(row, columns, "problem")
    generations = _pick(row, columns, "generations") or []
    math_verify, judge = _pick(row, columns, "correct") or [], _pick(row, columns, "correct_judge") or []
    reasons, complete = _pick(row, columns, "finish_reasons") or [], _pick(row, columns, "complete") or []
    out = []
    for i, generation in enumerate(generations):
        flags = [flags[i] for flags in (math_verify, judge) if i < len(flags) and flags[i] is not None]
        verified = any(flags) if flags else None
        if only_correct and not verified:
            continue
        finish = reasons[i] if i < len(reasons) else ("stop" if complete[i] else "length") if i < len(complete) \
            else None
        thinking, answer = split_response(generation)
        out.append(trace_row(problem, thinking, answer, id=_pick(row, columns, "id") or stable_id(source, problem),
                             source=source, gold_answer=_str_or_none(_pick(row, columns, "gold_answer")),
                             sample_index=i, verified=verified, finish_reason=finish))
    return out


STRATOS_COLUMNS = {"conversations": "conversations", "system": "system"}
_THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.DOTALL)
_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|$)", re.DOTALL)


def stratos(row: dict, *, source: str, columns: dict | None = None, only_correct: bool = False,
            keep_system: bool = False) -> list[dict]:
    """Bespoke-Stratos-17k and OpenThoughts-114k (Sky-T1 format): `conversations` [{from, value}] with the
    assistant's `<|begin_of_thought|>...<|end_of_thought|>` and `<|begin_of_solution|>...<|end_of_solution|>`.

    thinking = the thought block, answer = the solution block, gold_answer = None (the release has no reference
    answer). The release's system prompt describes the marker format this adapter rewrites into think tags, so
    it is dropped unless `keep_system`. The release was filtered for correctness by its makers and has no flags:
    `only_correct` drops nothing.
    """
    columns = {**STRATOS_COLUMNS, **(columns or {})}
    turns = _pick(row, columns, "conversations") or []
    user = next((t["value"] for t in turns if t["from"] in ("user", "human")), None)
    reply = next((t["value"] for t in turns if t["from"] in ("assistant", "gpt")), None)
    if user is None or reply is None:
        return []
    thought, solution = _THOUGHT.search(reply), _SOLUTION.search(reply)
    if thought and solution:
        thinking, answer = thought.group(1).strip(), solution.group(1).strip()
    else:  # no markers: maybe think tags already, else all answer
        thinking, answer = split_response(reply)
    system = _pick(row, columns, "system") if keep_system else None
    return [trace_row(user, thinking, answer, id=stable_id(source, user), source=source, system=system or None)]


S1K_COLUMNS = {"problem": "question", "gold_answer": "solution", "thinking": "deepseek_thinking_trajectory",
               "answer": "deepseek_attempt", "grade": "deepseek_grade"}


def s1k(row: dict, *, source: str, columns: dict | None = None, only_correct: bool = False,
        teacher: str = "deepseek") -> list[dict]:
    """s1K-1.1: thinking = `deepseek_thinking_trajectory`, answer = `deepseek_attempt`, gold = `solution` (the
    reference solution, often a whole worked answer). verified = `deepseek_grade` == 'Yes' when graded.
    `teacher='gemini'` reads the gemini_* columns instead of the deepseek_* ones (the s1K 1.0 traces)."""
    if teacher not in ("deepseek", "gemini"):
        raise ValueError(f"s1k teacher must be 'deepseek' or 'gemini', got {teacher!r}")
    columns = {role: re.sub(r"^deepseek_", f"{teacher}_", name)
               for role, name in {**S1K_COLUMNS, **(columns or {})}.items()}
    problem = _pick(row, columns, "problem")
    thinking, answer = _first(_pick(row, columns, "thinking")), _first(_pick(row, columns, "answer"))
    grade = _pick(row, columns, "grade")
    verified = None if grade is None else str(grade).strip().lower() == "yes"
    if (only_correct and verified is False) or thinking is None or answer is None:
        return []
    return [trace_row(problem, thinking, answer, id=stable_id(source, problem), source=source,
                      gold_answer=_str_or_none(_pick(row, columns, "gold_answer")), verified=verified)]


LIMO_COLUMNS = {"problem": "question", "solution": "solution", "gold_answer": "answer"}
_FINAL_ANSWER = "**Final Answer**"


def limo(row: dict, *, source: str, columns: dict | None = None, only_correct: bool = False) -> list[dict]:
    """LIMO: `solution` is the whole long reasoning. thinking = it up to its last '**Final Answer**' heading,
    answer = that heading onwards (its \\boxed{}); a solution without the heading is all thinking and the answer
    is \\boxed{answer}. gold = `answer`. No correctness flags (the release is curated): only_correct drops none."""
    columns = {**LIMO_COLUMNS, **(columns or {})}
    problem, solution = _pick(row, columns, "problem"), _pick(row, columns, "solution")
    gold = _str_or_none(_pick(row, columns, "gold_answer"))
    head, marker, tail = solution.rpartition(_FINAL_ANSWER)
    thinking, answer = (head, marker + tail) if marker else (solution, f"\\boxed{{{gold}}}")
    return [trace_row(problem, thinking.strip(), answer.strip(), id=stable_id(source, problem), source=source,
                      gold_answer=gold)]


GSM8K_COLUMNS = {"problem": "question", "rationale": "answer"}
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def gsm8k_rationale(rationale: str) -> tuple[str, str]:
    """(thinking, final answer) of a GSM8K rationale: the calculator notes <<a*b=c>> and the '#### N' line go,
    the thousands separators of N too ('1,080' -> '1080')."""
    body, _, final = rationale.rpartition("####")
    return _CALCULATOR.sub("", body).strip(), strip_thousands(final.strip())


def gsm8k(row: dict, *, source: str, columns: dict | None = None, only_correct: bool = False) -> list[dict]:
    """GSM8K train rationales (human written): thinking = the rationale, answer = gold = the number after ####."""
    columns = {**GSM8K_COLUMNS, **(columns or {})}
    problem = _pick(row, columns, "problem")
    thinking, answer = gsm8k_rationale(_pick(row, columns, "rationale"))
    return [trace_row(problem, thinking, answer, id=stable_id(source, problem), source=source, gold_answer=answer)]


def _first(value):
    """A release column that is a string, or (in one s1K-1.1 revision) a one-element list of strings."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _str_or_none(value) -> str | None:
    return None if value is None else str(value)


ADAPTERS = {"openr1_math": openr1_math, "stratos": stratos, "s1k": s1k, "limo": limo, "gsm8k": gsm8k}
# The roles without which an adapter cannot make a row; the others (flags, system prompt) are optional.
REQUIRED = {"openr1_math": ("problem", "generations"), "stratos": ("conversations",),
            "s1k": ("problem", "thinking", "answer"), "limo": ("problem", "solution", "gold_answer"),
            "gsm8k": ("problem", "rationale")}
DEFAULT_COLUMNS = {"openr1_math": OPENR1_COLUMNS, "stratos": STRATOS_COLUMNS, "s1k": S1K_COLUMNS,
                   "limo": LIMO_COLUMNS, "gsm8k": GSM8K_COLUMNS}

CARDS_DIR = released.CARDS_DIR
KEEP_HELP = {"correct": "the traces the release marks correct and whose generation finished (not cut by the length "
                        "limit)", "all": "every trace, whatever the release's flags say"}


def read_card(name: str) -> dict:
    """The YAML front matter of the card <name>.md; ValueError listing the names when there is no such card."""
    return released.read_card(name, adapters=ADAPTERS)


# the card file and the local copy a released name reads, for the fingerprint (pipeline/run/fingerprint.py)
_card_paths = released.card_paths
_local_path = released.shared_copy


def list_released() -> list[tuple[str, str]]:
    """(name, one-line help) of every released dataset with a card."""
    return [(name, read_card(name).get("help", "")) for name in released.card_names()]


def load_released(name: str, path: str | None = None, split: str = "train", limit: int | None = None,
                  keep: str = "correct", **options) -> datasets.Dataset:
    """A released dataset in the canonical trace schema.

    The raw rows come from `path` when given (a local file or folder), else the card's `shared_path` under
    $REASONFORGE_SHARED_DATA when set, else its hub id. `limit` keeps the first raw rows (an OpenR1 row gives one
    trace per generation). `keep="correct"` keeps only the traces the release marks correct and that finished
    (finish_reason not 'length'); a recipe's `{released: NAME}` asks for it unless it says `keep: all`. `options`
    go to the adapter (e.g. teacher='gemini' for s1k-1.1, keep_system=True for the Stratos format).
    """
    if keep not in KEEP_HELP:
        raise ValueError(f"keep must be one of {', '.join(KEEP_HELP)}, got {keep!r}")
    card = read_card(name)
    local = Path(path) if path else released.shared_copy(card)
    if local is not None:
        raw = load_rows_or_dataset(str(local), split=split, limit=limit)
    else:
        try:
            raw = load_rows_or_dataset(card["hub_id"], split=split, limit=limit, config=card.get("config"))
        except DataError as error:
            raise DataError(name, "(released)", f"not on this machine and {error.problem.split(', and ')[-1]}",
                            f"download {card['hub_id']} and point at it with {{released: {name}, path: FOLDER}}") \
                from None
    traces = adapt(raw, card["adapter"], source=name, columns=card.get("columns"), only_correct=keep == "correct",
                   **options)
    if keep == "correct":
        traces = traces.filter(lambda reasons: [r != "length" for r in reasons], input_columns="finish_reason",
                               batched=True, desc=f"keeping finished traces of {name}")
    return traces


def adapt(raw: datasets.Dataset, adapter: str, *, source: str, columns: dict | None = None,
          only_correct: bool = False, **options) -> datasets.Dataset:
    """Map a raw dataset through a named adapter; batched so that one raw row may become several or none."""
    function = ADAPTERS[adapter]
    names = {**DEFAULT_COLUMNS[adapter], **(columns or {})}
    missing = sorted({names[role] for role in REQUIRED[adapter]} - set(raw.column_names))
    if missing:
        raise DataError(source, "columns", f"the raw data lacks the columns {missing} that adapter '{adapter}' reads "
                        f"(it has {raw.column_names})", "point `path` at the right data, or map the columns in the card")

    def explode(batch: dict) -> dict:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        traces = [trace for row in rows
                  for trace in function(row, source=source, columns=columns, only_correct=only_correct, **options)]
        return {column: [trace[column] for trace in traces] for column in TRACE_COLUMNS}

    return raw.map(explode, batched=True, remove_columns=raw.column_names, features=trace_features(),
                   desc=f"adapting {source}")
