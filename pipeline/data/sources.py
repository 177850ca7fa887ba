"""Where rows come from: a local file, a local `save_to_disk` folder, a local folder of data files, or a hub id.

Everything returns a `datasets.Dataset`. Offline (HF_HUB_OFFLINE=1, as in the tests) a hub id fails at once with
one line that says what to do, instead of datasets' retry messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

REPO_ROOT = Path(__file__).resolve().parents[2]
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


def shared_data_dir() -> Path | None:
    """The shared data folder: $REASONFORGE_SHARED_DATA, else <repo root>/../shared/data; None when neither exists."""
    env = os.environ.get("REASONFORGE_SHARED_DATA")
    for candidate in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared" / "data"]:
        if candidate.is_dir():
            return candidate
    return None


def load_rows_or_dataset(path_or_id: str, split: str | None = None, limit: int | None = None, *,
                         config: str | None = None) -> datasets.Dataset:
    """One split of a dataset as a `datasets.Dataset`, from the first of these that applies:

    - a local file (.jsonl/.json/.parquet/.csv/.arrow): all its rows (`split` does not apply to a single file);
    - a local `save_to_disk` folder: the Dataset, or from a DatasetDict the split `split`, else "train", else the
      only one;
    - another local folder (e.g. a downloaded hub snapshot of data files): `datasets.load_dataset(folder)`;
    - a hub id, with an optional `config`: `datasets.load_dataset(id, config, split=split or "train")`.

    `limit` keeps the first rows. A missing local path (it has a file extension or a path separator that is not
    a hub id's) raises FileNotFoundError; an unreachable hub raises a one-line RuntimeError.
    """
    path = Path(path_or_id).expanduser()
    if path.is_file():
        dataset = _load_file(path)
    elif path.is_dir():
        dataset = _load_folder(path, split)
    elif path.suffix in FILE_BUILDERS or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") > 1:
        raise FileNotFoundError(f"no such file or folder: {path_or_id}")
    else:
        dataset = _load_hub(path_or_id, config, split or "train")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


def _load_file(path: Path) -> datasets.Dataset:
    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"cannot read {path}: expected one of {', '.join(FILE_BUILDERS)}")
    return datasets.load_dataset(builder, data_files=str(path), split="train")


def _load_folder(path: Path, split: str | None) -> datasets.Dataset:
    saved = (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
    loaded = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
    if isinstance(loaded, datasets.Dataset):
        return loaded
    names = list(loaded)
    chosen = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
    if chosen not in names:
        raise ValueError(f"{path} has splits {names}: pick one with split=..." if chosen is None
                         else f"{path} has no split '{chosen}'; it has {names}")
    return loaded[chosen]


def _load_hub(hub_id: str, config: str | None, split: str) -> datasets.Dataset:
    message = (f"cannot load dataset '{hub_id}': not a local file or folder, and the hub is unreachable "
               f"(HF_HUB_OFFLINE). Download it first or give a local path.")
    try:  # offline, datasets still serves a hub dataset from its local cache when it was downloaded before
        return datasets.load_dataset(hub_id, config, split=split)
    except ConnectionError as error:  # what datasets raises both in offline mode and when the network is down
        raise RuntimeError(message) from error
