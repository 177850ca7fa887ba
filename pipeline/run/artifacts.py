"""Run-dir layout and atomic writes: everything goes to a temporary name first and is moved into place."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
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


# ---- one run at a time: an flock on <run_dir>/.lock, which the kernel drops when its holder dies ----

class RunDirBusy(RuntimeError):
    """Another process holds the run dir's lock."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path):
    """Hold an exclusive lock on the run dir for the `with` block; RunDirBusy names the holder when it is taken.

    fcntl.flock belongs to the open file, not the path: a killed holder leaves no stale lock. The descriptor is not
    inheritable, so the processes a stage starts (accelerate launch, stage_worker) neither hold nor wait for it.
    """
    import fcntl

    path = Path(run_dir) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirBusy(f"{run_dir} is in use by another reasonforge run ({holder}); wait for it to finish, "
                             f"stop it (kill its PID), or give this run another run_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


# ---- keep a stage's last complete output until a new one is complete ----

def previous_dir(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / ".previous" / stage


def partial_dir(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / ".partial" / stage


def move_replacing(source: Path, target: Path) -> None:
    """Rename `source` to `target`, removing whatever `target` held."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(source, target)


def restore_previous(run_dir: Path, stage: str) -> bool:
    """Put a stage's set-aside complete output back when the attempt that replaced it did not finish; the
    unfinished attempt's work goes to .partial/ so a retry of the same fingerprint resumes from it."""
    stage_dir, previous = Path(run_dir) / stage, previous_dir(run_dir, stage)
    if not previous.exists():
        return False
    if (stage_dir / DONE).exists():  # the new attempt finished; only the cleanup was missed
        shutil.rmtree(previous)
        return False
    if stage_dir.exists():
        move_replacing(stage_dir, partial_dir(run_dir, stage))
    os.replace(previous, stage_dir)
    return True


# ---- a write that failed for lack of space or permission: one line that says what to do ----

WRITE_ERRNOS = {errno.ENOSPC: "free some space on that disk or point run_dir: at another one",
                errno.EDQUOT: "free some of your quota or point run_dir: at another disk",
                errno.EROFS: "the filesystem is read-only: point run_dir: at a writable folder",
                errno.EACCES: "make the folder writable for you or point run_dir: at another one",
                errno.EPERM: "make the folder writable for you or point run_dir: at another one"}


def write_error(error: BaseException | None) -> str | None:
    """One line for a disk-full or read-only failure anywhere in an exception's chain; None when there is none."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            where = error.filename or "the run dir"
            return (f"cannot write {where}: [Errno {error.errno}] {os.strerror(error.errno)} "
                    f"({errno.errorcode[error.errno]}); {WRITE_ERRNOS[error.errno]}")
        error = error.__cause__ or error.__context__
    return None
