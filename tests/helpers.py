"""Small writers the stage tests share: a recipe around some stages, a JSONL file of rows."""

import json
import textwrap
from pathlib import Path


def write_recipe(tmp_path: Path, stages: str) -> Path:
    """A recipe file whose run_dir is inside tmp_path; `stages` is the YAML of the stages, unindented."""
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nseed: 0\nrun_dir: {tmp_path / 'run'}\nstages:\n" + textwrap.indent(stages, "  "))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
