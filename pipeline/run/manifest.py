"""The run manifest at the run dir's root: resolved recipe, versions, git revision, seed, times, stage statuses."""

from __future__ import annotations

import subprocess
import time
from importlib import metadata

from pipeline.run import artifacts

PACKAGES = ("reasonforge", "torch", "transformers", "datasets", "accelerate", "trl", "math-verify")


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def start(recipe) -> dict:
    path = recipe.run_dir / "manifest.json"
    previous = artifacts.read_json(path, {}) or {}
    manifest = {
        "recipe": recipe.path, "name": recipe.name, "seed": recipe.seed, "resolved": recipe.raw,
        "versions": package_versions(), "git": git_revision(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "finished": None,
        "stages": previous.get("stages", {}),
    }
    artifacts.atomic_write_json(path, manifest)
    return manifest


def record(manifest: dict, recipe, stage: str, decision, hub: dict | None = None) -> None:
    """A stage's status, and the commits its hub models and datasets resolved to (when they are in the cache)."""
    status = {"run": "done", "cached": "cached", "skip": "skipped"}[decision.action]
    manifest["stages"][stage] = {"status": status, "reason": decision.reason,
                                 "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if hub:
        manifest["stages"][stage]["hub"] = hub
    artifacts.atomic_write_json(recipe.run_dir / "manifest.json", manifest)


def finish(manifest: dict, recipe) -> None:
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    artifacts.atomic_write_json(recipe.run_dir / "manifest.json", manifest)
