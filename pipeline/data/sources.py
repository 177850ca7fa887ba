"""Where rows come from: a local file, a local `save_to_disk` folder, a local folder of data files, or a hub id.

Everything returns a `datasets.Dataset`. Bad input raises `DataError`, one line that names the file, the line or
column, and the fix: a JSONL line that is not JSON, an empty file, a truncated parquet file, a hub id that cannot be
reached offline (instead of datasets' retry messages and 50-line tracebacks). `datasets` is imported only when data
is loaded: recipe validation uses `looks_local` from here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

from pipeline.data.errors import DataError

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
# Endings that mark a local file even where the name could pass for a hub id ("data/train.txt" is no dataset repo)
_FILE_ENDINGS = set(FILE_BUILDERS) | {".txt", ".tsv", ".gz", ".zip", ".xz", ".bz2", ".zst", ".xlsx", ".xls",
                                      ".yaml", ".yml", ".md", ".pkl", ".pt", ".bin", ".safetensors", ".gguf"}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
SUPPORTED = "a .jsonl, .json, .parquet, .csv or .arrow file, or a folder"


def looks_local(path_or_id: str) -> bool:
    """Whether a name that does not exist on disk is meant as a local path rather than a hub id: it starts with
    '.', '/' or '~', has more than one '/', ends like a file (.jsonl, .txt, ...), or is not of the hub's shape."""
    return (path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") > 1 or "\\" in path_or_id
            or Path(path_or_id).suffix.lower() in _FILE_ENDINGS or not _HUB_ID.fullmatch(path_or_id))


def load_rows_or_dataset(path_or_id: str, split: str | None = None, limit: int | None = None, *,
                         config: str | None = None):
    """One split of a dataset as a `datasets.Dataset`, from the first of these that applies:

    - a local file (.jsonl/.json/.parquet/.csv/.arrow): all its rows (`split` does not apply to a single file);
    - a local `save_to_disk` folder: the Dataset, or from a DatasetDict the split `split`, else "train", else the
      only one;
    - another local folder (e.g. a downloaded hub snapshot of data files): `datasets.load_dataset(folder)`;
    - a hub id, with an optional `config`: `datasets.load_dataset(id, config, split=split or "train")`.

    `limit` keeps the first rows. A missing local path (see `looks_local`), an unreadable file and an unreachable
    hub raise DataError.
    """
    path = Path(path_or_id).expanduser()
    if path.is_file():
        dataset = _load_file(path)
    elif path.is_dir():
        dataset = _load_folder(path, split)
    elif looks_local(path_or_id):
        raise DataError(path_or_id, "(file)", "no such file or folder",
                        f"check the path (relative paths start at the folder you run in, {Path.cwd()})")
    else:
        dataset = _load_hub(path_or_id, config, split or "train")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset


def _load_file(path: Path):
    import datasets

    builder = FILE_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DataError(path, "(file)", f"cannot read a '{path.suffix}' file", f"give {SUPPORTED}")
    if builder == "json" and not path.read_bytes().strip():
        raise DataError(path, "(file)", "the file is empty", "give a file with one JSON object per line")
    try:
        with _quiet("datasets"):  # its own "Failed to load JSON" log line would precede ours
            return datasets.load_dataset(builder, data_files=str(path), split="train")
    except (datasets.exceptions.DatasetsError, ValueError, StopIteration) as error:  # datasets wraps the reader's
        # error (ArrowInvalid, pandas' ParserError, ...) in DatasetGenerationError; parquet's comes bare
        raise _explain(path, builder, error) from None


def _explain(path: Path, builder: str, error: Exception) -> DataError:
    """The one-line DataError for a file datasets could not read: the first bad JSONL line when there is one."""
    cause = error.__cause__ or error.__context__ or error
    detail = " ".join(str(cause).split())[:200]
    if builder == "json" and path.suffix.lower() == ".jsonl":
        bad = _first_bad_jsonl_line(path)
        if bad:
            return DataError(path, f"line {bad[0]}", bad[1], "make every line one JSON object {\"column\": value}")
    if "corresponds to no data" in detail:  # datasets' words for a readable file with no rows (a header only)
        return DataError(path, "rows", "the file has no rows", "give a file with rows")
    if builder == "parquet":
        return DataError(path, "(file)", f"not a readable parquet file, truncated or corrupt ({detail})",
                         "write the file again, or download it again")
    return DataError(path, "(file)", f"cannot read it as {builder} ({detail})",
                     "fix the file, or convert it to one JSON object per line")


def _first_bad_jsonl_line(path: Path) -> tuple[int, str] | None:
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as error:
                return number, f"not valid JSON ({error.msg} at column {error.colno})"
            if not isinstance(value, dict):
                return number, f"a JSON {type(value).__name__}, not an object"
    return None


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_folder(path: Path, split: str | None):
    import datasets

    saved = (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
    try:
        loaded = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
    except (FileNotFoundError, ValueError) as error:  # a folder with no data files, or files datasets cannot read
        raise DataError(path, "(folder)", f"cannot load a dataset from it ({' '.join(str(error).split())[:200]})",
                        f"give {SUPPORTED} saved with save_to_disk") from None
    if isinstance(loaded, datasets.Dataset):
        return loaded
    names = list(loaded)
    chosen = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
    if chosen not in names:
        raise DataError(path, "split", f"has splits {names}: pick one" if chosen is None
                        else f"no split '{chosen}'; it has {names}", "set split: to one of them")
    return loaded[chosen]


def _load_hub(hub_id: str, config: str | None, split: str):
    import datasets

    try:  # offline, datasets still serves a hub dataset from its local cache when it was downloaded before
        return datasets.load_dataset(hub_id, config, split=split)
    except ConnectionError:  # what datasets raises both in offline mode and when the network is down
        raise DataError(hub_id, "(hub)", "not a local file or folder, and the hub is unreachable (HF_HUB_OFFLINE)",
                        "download it first or give a local path") from None
