"""The cards of the released chain-of-thought datasets (pipeline/data/cards/*.md), read without importing datasets.

A card's YAML front matter says where the data is (`hub_id` with `config`; `shared_path`, a file under the folder
that $REASONFORGE_SHARED_DATA names, when set), which adapter maps it, and which raw columns it reads. The cards
ship inside the package (package data), so `{released: NAME}` works from an installed wheel. Recipes are checked
against `card_names()` when they load.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CARDS_DIR = Path(__file__).resolve().parent / "cards"


def card_paths() -> dict[str, Path]:
    return {path.stem: path for path in sorted(CARDS_DIR.glob("*.md")) if path.stem.lower() != "readme"}


def card_names() -> list[str]:
    return list(card_paths())


def read_card(name: str, adapters=None) -> dict:
    """The YAML front matter of cards/<name>.md; ValueError listing the names when there is no such card, or
    (given the valid `adapters`) when it names another adapter."""
    cards = card_paths()
    if name not in cards:
        raise ValueError(f"Unknown released dataset '{name}'. Available: {', '.join(cards)}")
    text = cards[name].read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise ValueError(f"{cards[name]} has no YAML front matter (a first line '---')")
    front = yaml.safe_load(text[4:text.index("\n---", 4)])
    if adapters is not None and front.get("adapter") not in adapters:
        raise ValueError(f"{cards[name]}: adapter {front.get('adapter')!r} is not one of {', '.join(adapters)}")
    return front


def shared_copy(card: dict) -> Path | None:
    """The card's `shared_path` under $REASONFORGE_SHARED_DATA, when that variable is set and the file exists: an
    explicit opt-in to a local copy (nothing is looked up beside the repository)."""
    folder, relative = os.environ.get("REASONFORGE_SHARED_DATA"), card.get("shared_path")
    if not (folder and relative):
        return None
    path = Path(folder) / relative
    return path if path.exists() else None
