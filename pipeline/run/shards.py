"""Exactly-once JSONL shards: rows keyed by (id, sample_index), appended, fsynced, resumable after any crash.

    with ShardStore(ctx.stage_dir / "shards") as store:
        if ("p1", 0) not in store.done:
            store.write([{"id": "p1", "sample_index": 0, ...}])   # skips keys already stored; fsync before return
    rows = list(read_shards(ctx.stage_dir / "shards"))             # one row per key, in the order written

Layout: `part-00000.jsonl`, `part-00001.jsonl`, ... one JSON object per line. Each session (one `with`) appends to a
fresh part, so the parts a killed process left behind are only ever read, after their torn tail (a last line
without its newline, from a kill in mid-write) is cut off. A key already stored is never written again, so a rerun
after Ctrl-C, kill -9 or a crashed endpoint has no duplicate and, since a batch is fsynced before the caller counts
it done, no loss. An exclusive lock (`.lock`, flock) stops two processes from writing the same store at once; the
kernel drops it when its holder dies, so a kill -9 never leaves the store locked.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)
KEY = ("id", "sample_index")


def row_key(row: dict) -> tuple:
    return tuple(row[k] for k in KEY)


def part_paths(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob("part-*.jsonl"))


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that has no newline (a write killed halfway); returns the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline in 64 KiB steps: a torn line can be longer than one step.
        end, step = size, 1 << 16
        while end > 0:
            start = max(0, end - step)
            f.seek(start)
            block = f.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: dropped a torn last line (%d bytes) left by an interrupted write", path, size - keep)
    return size - keep


def iter_rows(path: Path) -> Iterator[dict]:
    """Complete lines of one part; a line that is not JSON (never written by ShardStore) is skipped with a warning."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return  # a torn tail that no writer has repaired yet: not a row
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    log.warning("%s:%d is not JSON; skipped", path, number)


def read_shards(folder: str | Path) -> Iterator[dict]:
    """Every stored row once (the first line written for a key wins), part by part in the order written."""
    seen: set[tuple] = set()
    for path in part_paths(folder):
        for row in iter_rows(path):
            key = row_key(row)
            if key not in seen:
                seen.add(key)
                yield row


class ShardStore:
    def __init__(self, folder: str | Path, max_lines_per_part: int = 100_000):
        self.folder = Path(folder)
        self.max_lines_per_part = max_lines_per_part
        self.done: set[tuple] = set()
        self._lock = None
        self._file = None
        self._lines = 0

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.folder / ".lock")
        for path in part_paths(self.folder):
            repair_torn_tail(path)
            self.done.update(row_key(row) for row in iter_rows(path))
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, rows: Iterable[dict]) -> int:
        """Append the rows whose key is not stored yet, flush and fsync; returns how many were written."""
        lines = []
        for row in rows:
            key = row_key(row)
            if key in self.done:
                continue
            self.done.add(key)
            lines.append(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        if not lines:
            return 0
        if self._file is None or self._lines >= self.max_lines_per_part:
            self._open_next_part()
        self._file.write("".join(lines))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._lines += len(lines)
        return len(lines)

    def _open_next_part(self) -> None:
        if self._file is not None:
            self._file.close()
        parts = part_paths(self.folder)
        number = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        # Held open across batches (one part per session) and closed by close(): not a with-block.
        self._file = open(self.folder / f"part-{number:05d}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._lines = 0
        _fsync_dir(self.folder)  # the new file's name must survive a crash too

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def _lock(path: Path):
    handle = open(path, "a")  # noqa: SIM115 (held for the store's lifetime: closing it releases the lock)
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process guard, single-writer use only
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(f"another process is writing shards in {path.parent}; wait for it to finish or stop it "
                           f"(the lock is released automatically when that process exits)") from None
    return handle


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
