"""Data sources cut to their first rows for a rehearsal, and the full size each stands for.

A hub dataset is streamed (`datasets.load_dataset(..., streaming=True)`): the first rows arrive without the split
being downloaded. A released dataset is streamed from its card's hub id the same way (or cut from its local copy).
A local file or folder keeps its path with a `limit`. The full row count, for the cost projection, comes from the
recipe's own `limit`, the data card's `size`, or the hub README's `dataset_info`, in that order; None when none says.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

log = logging.getLogger("reasonforge.rehearsal")


def cut_source(ref: dict, folder: Path, rows: int) -> tuple[dict, dict]:
    """(the rehearsal's data reference, {rows, full_rows, source}) for one recipe data reference."""
    if ref.get("released"):
        return _released(ref, folder, rows)
    path = str(ref.get("path"))
    if Path(path).expanduser().exists():
        limit = ref.get("limit")
        full = _local_rows(Path(path).expanduser())
        return {**ref, "limit": min(int(limit), rows) if limit else rows}, \
            {"source": path, "rows": rows, "full_rows": _capped(full, limit)}
    file = _stream_to_file(path, ref.get("config"), ref.get("split") or "train", folder, rows)
    cut = {k: v for k, v in ref.items() if k not in ("path", "split", "limit", "config")}
    full = _capped(_hub_rows(path, ref.get("config"), ref.get("split") or "train"), ref.get("limit"))
    return {**cut, "path": str(file)}, {"source": path, "rows": rows, "full_rows": full, "file": str(file)}


def _released(ref: dict, folder: Path, rows: int) -> tuple[dict, dict]:
    from pipeline.data.adapters import read_card

    card = read_card(ref["released"])
    full = _capped(card.get("size"), ref.get("limit"))
    if ref.get("path") and Path(ref["path"]).exists():
        return {**ref, "limit": rows}, {"source": ref["path"], "rows": rows, "full_rows": full}
    file = _stream_to_file(card["hub_id"], card.get("config"), card.get("split") or "train", folder, rows)
    cut = {k: v for k, v in ref.items() if k != "limit"}
    return {**cut, "path": str(file)}, {"source": card["hub_id"], "rows": rows, "full_rows": full, "file": str(file)}


def _stream_to_file(hub_id: str, config: str | None, split: str, folder: Path, rows: int) -> Path:
    """The first `rows` rows of a hub dataset's split, streamed, as a JSONL file (reused when already cut)."""
    import datasets

    from pipeline.run.artifacts import atomic_write_text

    file = folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '--', hub_id)}--{config or 'default'}--{split}--{rows}.jsonl"
    if file.exists():
        return file
    try:
        stream = datasets.load_dataset(hub_id, config, split=split, streaming=True)
        taken = list(stream.take(rows))
    except (ConnectionError, FileNotFoundError, ValueError) as error:
        raise RuntimeError(f"rehearsal: cannot stream the first rows of dataset '{hub_id}' (split {split}): "
                           f"{str(error).splitlines()[0] if str(error) else type(error).__name__}. Check the id and "
                           f"split, or give a local path") from None
    atomic_write_text(file, "".join(json.dumps(row, default=str) + "\n" for row in taken))
    log.info("rehearsal data %s[%s]: first %d rows streamed to %s", hub_id, split, len(taken), file)
    return file


def _hub_rows(hub_id: str, config: str | None, split: str) -> int | None:
    """The split's row count as the dataset's hub README states it (`dataset_info`, fetched alone, no data), else
    the datasets library's info for it; None when neither says."""
    from huggingface_hub import DatasetCard

    try:
        infos = DatasetCard.load(hub_id).data.to_dict().get("dataset_info") or []
    except Exception:  # noqa: BLE001 - no card, offline without it: fall back below
        infos = []
    for info in infos if isinstance(infos, list) else [infos]:
        if info.get("config_name", "default") == (config or "default"):
            sizes = {s.get("name"): s.get("num_examples") for s in info.get("splits") or []}
            if sizes.get(split):
                return int(sizes[split])
    try:
        import datasets

        splits = datasets.load_dataset_builder(hub_id, config).info.splits
        return int(splits[split].num_examples) if splits and split in splits else None
    except Exception:  # noqa: BLE001 - a missing count only makes the projection say "unknown"
        return None


def _local_rows(path: Path) -> int | None:
    if path.is_file() and path.suffix in (".jsonl",):
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    return None


def _capped(full: int | None, limit) -> int | None:
    if limit is None:
        return full
    return min(int(limit), full) if full else int(limit)
