"""Fingerprints: a stage's identity = its resolved config + its upstream outputs + the content of local inputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pipeline.artifacts import atomic_write_json, read_json


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(kind: str, plain_config: dict) -> str:
    return sha256_text(json.dumps({"kind": kind, "config": plain_config}, sort_keys=True, default=str))


def local_paths(value) -> list[str]:
    """Every string inside a plain config that names an existing local file or folder (hub ids do not exist)."""
    found: list[str] = []
    if isinstance(value, str):
        if value and ("/" in value or "." in value) and os.path.exists(value):
            found.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            found += local_paths(v)
    elif isinstance(value, list):
        for v in value:
            found += local_paths(v)
    return sorted(set(found))


class ContentHasher:
    """Content hashes of files and folders, cached by (path, size, mtime) so a plan does not reread gigabytes."""

    def __init__(self, cache_path: Path | None = None):
        self.cache_path = cache_path
        self.cache: dict = (read_json(cache_path, {}) if cache_path else {}) or {}

    def hash_path(self, path: str) -> str:
        p = Path(path)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        digest = hashlib.sha256()
        for f in files:
            digest.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            digest.update(self._hash_file(f).encode())
        return digest.hexdigest()

    def _hash_file(self, f: Path) -> str:
        st = f.stat()
        key = f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if key not in self.cache:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            self.cache[key] = h.hexdigest()
        return self.cache[key]

    def save(self) -> None:
        if self.cache_path:
            atomic_write_json(self.cache_path, self.cache)


def combine(config_digest: str, inputs: dict[str, str], upstream: dict[str, str]) -> str:
    return sha256_text(json.dumps({"config": config_digest, "inputs": inputs, "upstream": upstream},
                                  sort_keys=True))[:16]
