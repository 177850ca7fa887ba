"""The `preferences` stage: preference pairs from scored samples, so a recipe can train its own reward model.

    prefs:
      kind: preferences
      data: {from: samples}                 # canonical traces, several samples per problem `id`
      rewards: [{name: accuracy, weight: 1.0}, {name: think_format, weight: 0.5}]   # when rows carry no score
      max_pairs_per_prompt: 4
      test_fraction: 0.1

Every sample gets a score: its `score` column when a curate verify step filled it, else the weighted sum of
`rewards` computed here. A sample is a chosen candidate when it is good: `verified` is True where that column is
filled, else its score reaches `chosen_min_score` (default: the sum of the positive weights, i.e. every reward
fully satisfied when rewards score in [0, 1]; with a `score` column and no `verified`, the best score of its
problem). A rejected candidate is any sample of the same problem that is not good and either failed the verify
step (`verified` False against a True) or scores at least `min_margin` below the chosen one: a wrong answer, or a
right one that rambles out of the R1 layout.
Up to `max_pairs_per_prompt` distinct (chosen, rejected) pairs are drawn per problem with the stage's seed.

Output: a DatasetDict {train, test} split by problem (never one problem on both sides) of rows {prompt (chat
messages, system prompt kept), chosen, rejected (one assistant message each), id, score_chosen, score_rejected}.
The assistant message holds the answer part only (`completion: answer`, the text after </think>), which is what
the `helpfulness` reward shows a reward model; `completion: response` keeps the whole response (harmlessness).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from pipeline.run.context import StageContext, StageResult
from pipeline.run.refs import DataRef
from pipeline.run.registry import register_stage

DEFAULT_REWARDS = [{"name": "accuracy", "weight": 1.0}, {"name": "think_format", "weight": 0.5}]


@dataclass
class PreferencesStage:
    # canonical traces with several samples per `id`; a list pools sources by problem id (e.g. a strong and a weak
    # model's samples, or reference solutions next to a model's attempts)
    data: DataRef | list[DataRef]
    rewards: list[dict] = field(default_factory=lambda: [dict(r) for r in DEFAULT_REWARDS])  # scores rows without one
    max_pairs_per_prompt: int = 4
    min_margin: float = 0.5  # rejected scores at least this much below chosen
    chosen_min_score: float | None = None  # see the module docstring for the default
    completion: str = "answer"  # "answer": text after </think>; "response": the whole response
    test_fraction: float = 0.1  # share of problems held out as the test split
    seed: int | None = None  # default: the recipe seed

    def __post_init__(self):
        from pipeline.stages.grpo import check_reward_spec

        for i, spec in enumerate(self.rewards):
            check_reward_spec(spec, f"rewards[{i}]")
        if not isinstance(self.max_pairs_per_prompt, int) or self.max_pairs_per_prompt < 1:
            raise ValueError(f"max_pairs_per_prompt: must be an integer >= 1, got {self.max_pairs_per_prompt!r}")
        if self.min_margin < 0:
            raise ValueError(f"min_margin: must be >= 0, got {self.min_margin}")
        if self.completion not in ("answer", "response"):
            raise ValueError(f"completion: '{self.completion}' is not allowed; use 'answer' or 'response'")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction: must be in [0, 1), got {self.test_fraction}")


def score_rows(rows: list[dict], specs: list[dict]) -> list[float | None]:
    """Each row's `score` when filled, else the weighted sum of the rewards on its response (None: unjudged)."""
    import rewards

    todo = [i for i, r in enumerate(rows) if r.get("score") is None and r.get("response")]
    scores = [r.get("score") for r in rows]
    if todo:
        fns = [rewards.build_reward(s) for s in specs]
        weights = [float(s.get("weight", 1.0)) for s in specs]
        subset = [rows[i] for i in todo]
        keys = dict.fromkeys(k for r in subset for k in r)  # pooled sources may differ in their extra columns
        columns = {k: [r.get(k) for r in subset] for k in keys if k not in ("completions", "prompts")}
        totals = rewards.weighted_sum(fns, weights, [r["response"] for r in subset], **columns)
        for i, total in zip(todo, totals):
            scores[i] = total
    return scores


def is_good(row: dict, score: float | None, threshold: float | None) -> bool:
    if row.get("verified") is not None:
        return bool(row["verified"]) and score is not None
    return score is not None and threshold is not None and score >= threshold - 1e-9


def clearly_worse(rows, scores, chosen: int, rejected: int, margin: float) -> bool:
    """A verify step's verdict (True over False) settles it; otherwise the score gap must reach `margin`."""
    if rows[chosen].get("verified") is True and rows[rejected].get("verified") is False:
        return True
    return scores[chosen] - scores[rejected] >= margin - 1e-9


def make_pairs(rows: list[dict], scores: list, threshold: float | None, cfg: PreferencesStage, rng) -> list:
    """(chosen index, rejected index) pairs within each problem `id`, at most cfg.max_pairs_per_prompt each."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if scores[i] is not None and row.get("response"):
            groups[str(row["id"])].append(i)
    pairs = []
    for problem in sorted(groups):
        members = groups[problem]
        cut = threshold if threshold is not None else max(scores[i] for i in members)
        good = [i for i in members if is_good(rows[i], scores[i], cut)]
        bad = [i for i in members if i not in good]
        candidates = [(c, r) for c in good for r in bad if clearly_worse(rows, scores, c, r, cfg.min_margin)]
        pairs += rng.sample(candidates, min(cfg.max_pairs_per_prompt, len(candidates)))
    return pairs


def prompt_messages(row: dict) -> list[dict]:
    """The conversation before the assistant turn: from `messages` when present (system prompt kept), else the
    problem as one user message."""
    messages = row.get("messages") or []
    if messages and messages[-1].get("role") == "assistant":
        return [{"role": m["role"], "content": m["content"]} for m in messages[:-1]]
    return [{"role": "user", "content": row["problem"]}]


def assistant_text(row: dict, completion: str) -> str:
    import rewards.text

    return rewards.text.answer_part(row["response"]) if completion == "answer" else row["response"]


def pair_row(rows, scores, chosen: int, rejected: int, completion: str) -> dict:
    c, r = rows[chosen], rows[rejected]
    return {"prompt": prompt_messages(c), "id": str(c["id"]),
            "chosen": [{"role": "assistant", "content": assistant_text(c, completion)}],
            "rejected": [{"role": "assistant", "content": assistant_text(r, completion)}],
            "score_chosen": float(scores[chosen]), "score_rejected": float(scores[rejected])}


@register_stage("preferences", PreferencesStage, help="preference pairs (chosen/rejected) from scored samples")
def run(cfg: PreferencesStage, ctx: StageContext) -> StageResult:
    """Score, pair within each problem, split by problem into train/test, save a DatasetDict."""
    import datasets

    rows = []
    for ref in cfg.data if isinstance(cfg.data, list) else [cfg.data]:
        data = ctx.load_dataset(ref)
        missing = [c for c in ("id", "response") if c not in data.column_names]
        if missing:
            raise ValueError(f"data: column '{missing[0]}' missing in {ref.describe()}; preferences needs canonical "
                             f"traces with several samples per problem id (columns: {', '.join(data.column_names)})")
        rows += data.to_list()
    scores = score_rows(rows, cfg.rewards)
    scored_here = any(r.get("score") is None for r in rows)
    threshold = cfg.chosen_min_score
    if threshold is None and scored_here:
        threshold = sum(max(0.0, float(s.get("weight", 1.0))) for s in cfg.rewards)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    pairs = make_pairs(rows, scores, threshold, cfg, random.Random(seed))
    if not pairs:
        raise ValueError(f"data: no (chosen, rejected) pair found among {len(rows)} rows: no problem has both a "
                         f"good sample (score >= {threshold}) and one {cfg.min_margin} lower; lower chosen_min_score "
                         f"or min_margin, or draw more samples per problem")
    problems = sorted({str(rows[c]["id"]) for c, _ in pairs})
    random.Random(seed + 1).shuffle(problems)
    held_out = set(problems[: round(len(problems) * cfg.test_fraction)])
    out = {"train": [], "test": []}
    for c, r in pairs:
        out["test" if str(rows[c]["id"]) in held_out else "train"].append(pair_row(rows, scores, c, r, cfg.completion))
    dataset = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in out.items() if v})
    ctx.save_dataset(dataset, "dataset")
    ctx.ledger.add(rows_processed=len(rows))
    metrics = {"rows": len(rows), "problems": len({str(r["id"]) for r in rows}), "problems_paired": len(problems),
               "pairs": {k: len(v) for k, v in out.items()}, "chosen_min_score": threshold}
    return StageResult(dataset="dataset", metrics=metrics)
