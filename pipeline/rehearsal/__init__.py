"""Rehearsal: a real-scale recipe, every stage in order, at toy scale on a CPU in minutes.

    reasonforge run recipes/distill-qwen2.5-math-1.5b-openr1.yaml --rehearse [--rehearse-size 2x64]
    reasonforge plan recipes/distill-qwen2.5-math-1.5b-openr1.yaml --rehearse

Every model is rebuilt from its own config and tokenizer files, shrunk, with random weights (shrink.py); every data
source is cut to its first rows (sources.py); trainers take a few steps and resume once (driver.py); stand-ins for
what a CPU cannot run are listed (transform.py). The run dir is `<run_dir>.rehearsal`. At the end one table says
what passed, what each stage checked (checks.py), and what the full run will cost (costs.py, projection.py); it is
written to `<run_dir>.rehearsal/rehearsal.md` and `.json`.
"""

from __future__ import annotations

import os
from pathlib import Path

KEEP_ROWS_ENV = "REASONFORGE_REHEARSAL_KEEP_ROWS"

from pipeline.rehearsal.shrink import DEFAULT_SIZE, parse_size  # noqa: F401


def keeps_rows(stage: str) -> bool:
    """Whether a curate stage keeps its input when a step would drop every row: only in a rehearsal, and only for
    stages whose rows a random-weight model wrote (set by the rehearsal driver; real traces are never excused)."""
    return stage in os.environ.get(KEEP_ROWS_ENV, "").split(",")


def prepare(path: str, overrides: list[str], size: dict, launches: bool = True):
    """(the Rehearsal, the loaded rehearsal recipe); the recipe as written is validated first."""
    import yaml

    from pipeline.rehearsal.transform import rehearsal_recipe, write_recipe
    from pipeline.run.recipe import apply_overrides, load_recipe

    load_recipe(path, overrides)  # every error a real run would give, first
    raw = apply_overrides(yaml.safe_load(Path(path).read_text()), overrides, path)
    reh = rehearsal_recipe(raw, size, launches=launches)
    written = write_recipe(reh, Path(reh.raw["run_dir"]) / "rehearsal.yaml")
    return reh, load_recipe(written)


def rehearse(path: str, overrides: list[str], size: dict, launches: bool = True) -> int:
    """Run the rehearsal, print and write the table; 0 when every stage passed, 1 otherwise."""
    from pipeline.rehearsal import report
    from pipeline.rehearsal.driver import run_rehearsal
    from pipeline.run.artifacts import atomic_write_text

    reh, recipe = prepare(path, overrides, size, launches)
    reports = run_rehearsal(reh, recipe)
    table = report.format_table(recipe.name, reports, reh.notes, reh.models, recipe.price_per_device_hour)
    atomic_write_text(recipe.run_dir / "rehearsal.md", table)
    atomic_write_text(recipe.run_dir / "rehearsal.json", report.to_json(reports, reh.notes, reh.models))
    print(table)
    print(f"rehearsal written to {recipe.run_dir / 'rehearsal.md'}")
    return 0 if all(r.status == "passed" for r in reports) else 1
