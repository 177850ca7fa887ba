"""Released chain-of-thought datasets by name, described by the cards in `data_cards/`.

A card's YAML front matter says where the data is (`hub_id` with `config`, or `local_path` relative to the repo
root), which adapter maps it to the canonical schema, and which raw columns that adapter reads (`columns`).
`load_released(name)` follows the card; `path=` points it at a local copy of the raw data instead.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import yaml

from pipeline.data.adapters import ADAPTERS, DEFAULT_COLUMNS, REQUIRED
from pipeline.data.schema import TRACE_COLUMNS, trace_features
from pipeline.data.sources import REPO_ROOT, load_rows_or_dataset, shared_data_dir

CARDS_DIR = REPO_ROOT / "data_cards"
_SHARED_PREFIX = "../shared/data/"


def _card_paths() -> dict[str, Path]:
    return {path.stem: path for path in sorted(CARDS_DIR.glob("*.md")) if path.stem.lower() != "readme"}


def read_card(name: str) -> dict:
    """The YAML front matter of data_cards/<name>.md; ValueError listing the names when there is no such card."""
    cards = _card_paths()
    if name not in cards:
        raise ValueError(f"Unknown released dataset '{name}'. Available: {', '.join(cards)}")
    text = cards[name].read_text()
    if not text.startswith("---\n"):
        raise ValueError(f"{cards[name]} has no YAML front matter (a first line '---')")
    front = yaml.safe_load(text[4:text.index("\n---", 4)])
    if front.get("adapter") not in ADAPTERS:
        raise ValueError(f"{cards[name]}: adapter {front.get('adapter')!r} is not one of {', '.join(ADAPTERS)}")
    return front


def list_released() -> list[tuple[str, str]]:
    """(name, one-line help) of every released dataset with a card."""
    return [(name, read_card(name).get("help", "")) for name in _card_paths()]


def _local_path(card: dict) -> Path | None:
    """The card's local_path when it exists; a ../shared/data/ path also follows $REASONFORGE_SHARED_DATA."""
    local = card.get("local_path")
    if not local:
        return None
    candidates = [REPO_ROOT / local]
    shared = shared_data_dir()
    if shared and local.startswith(_SHARED_PREFIX):
        candidates.insert(0, shared / local[len(_SHARED_PREFIX):])
    return next((path for path in candidates if path.exists()), None)


def load_released(name: str, path: str | None = None, split: str = "train", limit: int | None = None,
                  only_correct: bool = False, **options) -> datasets.Dataset:
    """A released dataset in the canonical trace schema.

    The raw rows come from `path` when given (a local file or folder), else the card's local_path when it
    exists, else its hub id. `limit` keeps the first raw rows (an OpenR1 row gives one trace per generation).
    `only_correct` drops traces whose release marks them wrong. `options` go to the adapter (e.g. teacher='gemini'
    for s1k-1.1, keep_system=True for the Stratos format).
    """
    card = read_card(name)
    local = Path(path) if path else _local_path(card)
    if local is not None:
        raw = load_rows_or_dataset(str(local), split=split, limit=limit)
    else:
        raw = load_rows_or_dataset(card["hub_id"], split=split, limit=limit, config=card.get("config"))
    return adapt(raw, card["adapter"], source=name, columns=card.get("columns"), only_correct=only_correct,
                 **options)


def adapt(raw: datasets.Dataset, adapter: str, *, source: str, columns: dict | None = None,
          only_correct: bool = False, **options) -> datasets.Dataset:
    """Map a raw dataset through a named adapter; batched so that one raw row may become several or none."""
    function = ADAPTERS[adapter]
    names = {**DEFAULT_COLUMNS[adapter], **(columns or {})}
    missing = sorted({names[role] for role in REQUIRED[adapter]} - set(raw.column_names))
    if missing:
        raise ValueError(f"{source}: the raw data lacks the columns {missing} that adapter '{adapter}' reads; it "
                         f"has {raw.column_names}. Point `path` at the right data, or map the columns in the card.")

    def explode(batch: dict) -> dict:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        traces = [trace for row in rows
                  for trace in function(row, source=source, columns=columns, only_correct=only_correct, **options)]
        return {column: [trace[column] for trace in traces] for column in TRACE_COLUMNS}

    return raw.map(explode, batched=True, remove_columns=raw.column_names, features=trace_features(),
                   desc=f"adapting {source}")
