"""Run-dir layout and atomic writes: everything goes to a temporary name first and is moved into place."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

DONE = "DONE"


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path, default=None):
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside `path`; on success it replaces `path` whole, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_dataset(dataset, path: str | Path) -> Path:
    """`datasets` save_to_disk, atomically."""
    import datasets

    kwargs = {}
    if isinstance(dataset, datasets.Dataset) and len(dataset) == 0:
        kwargs["num_shards"] = 1  # datasets 5 writes no data file for an empty Dataset unless asked for one shard
    with atomic_dir(path) as tmp:
        dataset.save_to_disk(str(tmp), **kwargs)
    return Path(path)


def clean_stale_temporaries(folder: str | Path) -> None:
    """Remove the `.x.tmp` leftovers of a writer that was killed mid-write."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.glob(".*.tmp"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
