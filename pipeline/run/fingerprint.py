"""Fingerprints: a stage's identity = its resolved config + its upstream outputs + the content of local inputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pipeline.run.artifacts import atomic_write_json, read_json


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(kind: str, plain_config: dict) -> str:
    return sha256_text(json.dumps({"kind": kind, "config": plain_config}, sort_keys=True, default=str))


PATH_KEYS = {"path", "file", "files", "benchmark", "benchmarks"}
PATH_SUFFIXES = ("_path", "_file", "_files", "_dir")


def _path_typed(key: str) -> bool:
    return key in PATH_KEYS or key.endswith(PATH_SUFFIXES)


def local_paths(value, key: str | None = None) -> list[str]:
    """Every existing local file or folder a plain config names in a path-typed field: a model or data
    reference's `path`, a field named file/path/..._path/..._file/..._dir, a benchmark given by path. Other
    strings are never paths, whatever they contain (a stop string "." must not hash the working directory)."""
    found: list[str] = []
    if isinstance(value, str):
        if key is not None and _path_typed(key) and value and os.path.exists(value):
            found.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            found += local_paths(v, str(k))
    elif isinstance(value, list):
        for v in value:
            found += local_paths(v, key)
    return sorted(set(found))


def reference_files(value, key: str | None = None) -> list[str]:
    """Files behind names: a `{released: NAME}` card and the local data it points to, a named benchmark's local
    copy, and the benchmarks a decontaminate step reads by default. Editing any of them changes the results."""
    found: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("released"), str):
            found += _released_files(value["released"])
        if value.get("step") == "decontaminate" and "benchmarks" not in value:
            from pipeline.curation.decontaminate import DEFAULT_BENCHMARKS

            found += [f for name in DEFAULT_BENCHMARKS for f in _benchmark_files(name)]
        for k, v in value.items():  # decontaminate's `benchmarks: {label: NAME}` names a benchmark under any label
            found += reference_files(v, "benchmark" if key == "benchmarks" and isinstance(v, str) else str(k))
    elif isinstance(value, list):
        for v in value:
            found += reference_files(v, key)
    elif isinstance(value, str) and key in ("benchmark", "benchmarks"):
        found += _benchmark_files(value)
    return sorted(set(found))


def _released_files(name: str) -> list[str]:
    """The card of a released dataset and, when one is used, its local copy."""
    from pipeline.data import released

    card_path = released.card_paths().get(name)
    if card_path is None:
        return []
    try:
        local = released.shared_copy(released.read_card(name))
    except (ValueError, OSError):
        local = None
    return [str(p) for p in (card_path, local) if p is not None and Path(p).exists()]


def _benchmark_files(name: str) -> list[str]:
    """The packaged file a named benchmark loads (pipeline.data.benchmarks.benchmark_file)."""
    from pipeline.data import benchmarks

    if name not in benchmarks.BENCHMARKS:
        return []
    found = benchmarks.benchmark_file(name)
    return [str(found)] if Path(found).exists() else []


def reference_inputs(plain: dict) -> dict[str, str]:
    """{label: absolute path} of `reference_files`: a file inside the project is labelled by its path relative to
    the project, so a clone elsewhere has the same fingerprint."""
    return {_relative(Path(f)): f for f in reference_files(plain)}


def hub_revisions(value, key: str | None = None) -> dict[str, str | None]:
    """{hub id: the commit it resolves to in the local huggingface_hub cache (None when not cached yet)} for every
    model or data reference by hub id (a `path` that is no local file and looks like org/name)."""
    found: dict[str, str | None] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            found.update(hub_revisions(v, str(k)))
    elif isinstance(value, list):
        for v in value:
            found.update(hub_revisions(v, key))
    elif isinstance(value, str) and key in ("path", "model") and value.count("/") == 1 and not os.path.exists(value) \
            and not value.startswith((".", "/", "~")):
        found[value] = _cached_commit(value)
    return found


def _cached_commit(repo_id: str) -> str | None:
    """The commit `refs/main` names in the hub cache, for a model or else a dataset repo; no network."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    for repo_type in ("model", "dataset"):
        ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type) / "refs" / "main"
        if ref.is_file():
            return ref.read_text().strip() or None
    return None


CODE_PACKAGES = ("pipeline", "rewards")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The registry's loader imports every stage kind; reaching it says nothing about what one stage computes.
NOT_CODE_OF_A_STAGE = {"pipeline.stages"}
_code_cache: dict[str, dict[str, str]] = {}


def code_hashes(module_name: str) -> dict[str, str]:
    """{file: sha256} of the source a stage kind can reach: its module and, transitively, every module of pipeline/
    and rewards/ it imports (anywhere in the file: the stages import lazily inside functions). A static walk with
    `ast`, so nothing is imported. A package's __init__ counts only when it is imported itself (`import rewards`
    runs every reward module), not as the parent of a submodule (pipeline/stages/__init__ imports every stage)."""
    if module_name not in _code_cache:
        import sys

        start = getattr(sys.modules.get(module_name), "__file__", None) or _module_file(module_name)
        files, todo = {}, [(module_name, Path(start))] if start else []
        while todo:
            name, path = todo.pop()
            if path in files:
                continue
            source = path.read_bytes()
            files[path] = hashlib.sha256(source).hexdigest()[:16]
            todo += [(n, f) for n in _imports(name, path, source) if (f := _module_file(n)) and f not in files]
        _code_cache[module_name] = {_relative(f): h for f, h in sorted(files.items())}
    return _code_cache[module_name]


def _imports(module: str, path: Path, source: bytes) -> list[str]:
    import ast

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # `from pipeline import training`
    return [n for n in names if n.split(".")[0] in CODE_PACKAGES and n not in NOT_CODE_OF_A_STAGE]


def _module_file(name: str) -> Path | None:
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


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


def combine(config_digest: str, inputs: dict[str, str], upstream: dict[str, str], code: dict | None = None) -> str:
    parts = {"config": config_digest, "inputs": inputs, "upstream": upstream}
    if code is not None:
        parts["code"] = code
    return sha256_text(json.dumps(parts, sort_keys=True))[:16]
