"""reasonforge run | plan | validate | ls | cost | eval | card   (python -m pipeline works too)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pipeline.data.errors import DataError
from pipeline.run.recipe import RecipeError, load_recipe

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # overrides may also come after options (run R --only S key=value): take the leftover key=value words
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides += extra
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.handler(args) or 0
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (UserFacingError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:
        from pipeline.run.artifacts import write_error

        line = write_error(e)  # disk full, read-only run dir: one line that says what to do, not a traceback
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT


class UserFacingError(Exception):
    """Bad input found after the recipe loaded (a stage name, a run dir): one line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasonforge", description="Make reasoning models from YAML recipes.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a recipe's stages, skipping cached ones")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="dotted key=value, e.g. stages.sft.trainer.learning_rate=1e-3")
    p.add_argument("--only", help="run only this stage (its upstream must have finished)")
    p.add_argument("--from", dest="from_stage", help="rerun this stage and everything after it")
    p.add_argument("--force", action="append", default=[], help="rerun this stage (and what depends on it)")
    add_rehearse_options(p)
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("plan", help="say which stages would run and why")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--only")
    p.add_argument("--from", dest="from_stage")
    p.add_argument("--force", action="append", default=[])
    add_rehearse_options(p)
    p.set_defaults(handler=cmd_plan)
    p = sub.add_parser("validate", help="load and check recipes without running anything")
    p.add_argument("recipes", nargs="+")
    p.set_defaults(handler=cmd_validate)
    p = sub.add_parser("ls", help="list stage kinds, rewards, tasks, benchmarks and released datasets")
    p.set_defaults(handler=cmd_ls)
    p = sub.add_parser("cost", help="compute and cost per stage, headline versus total")
    p.add_argument("run_dir")
    p.set_defaults(handler=cmd_cost)
    from pipeline.data import dataset_card as cards
    from pipeline.stages import evaluate

    evaluate.add_cli(sub)
    cards.add_cli(sub)
    return parser


def add_rehearse_options(p) -> None:
    p.add_argument("--rehearse", action="store_true",
                   help="the whole recipe at toy scale: real tokenizers and configs, shrunk random models, a few rows "
                        "and steps, in <run_dir>.rehearsal; ends with a table of checks and a projected cost")
    p.add_argument("--rehearse-size", default=None, help="LAYERSxHIDDEN of the shrunk models (default 2x64)")
    p.add_argument("--rehearse-no-launch", action="store_true",
                   help="run launch: stages in-process instead of on 2 CPU processes")


def rehearsal_args(args):
    """(size, launches) of --rehearse; a bad size is a one-line error."""
    from pipeline.rehearsal import parse_size

    if args.only or args.from_stage or args.force:
        raise UserFacingError("--rehearse runs the whole recipe: drop --only/--from/--force")
    try:
        return parse_size(args.rehearse_size), not args.rehearse_no_launch
    except ValueError as e:
        raise UserFacingError(f"--rehearse-size: {e}") from None


def cmd_run(args) -> int:
    from pipeline.run import runner

    if args.rehearse:
        from pipeline.rehearsal import rehearse

        return rehearse(args.recipe, args.overrides, *rehearsal_args(args))
    recipe = load_recipe(args.recipe, args.overrides)
    try:
        runner.run(recipe, only=args.only, from_stage=args.from_stage, force=args.force)
    except runner.PlanError as e:
        raise UserFacingError(str(e)) from None
    print_reports(recipe)
    print(f"run finished: {recipe.run_dir}")
    return 0


def print_reports(recipe) -> None:
    """The summary of every report stage, cached or not, so each run ends with its results."""
    for spec in recipe.stages:
        summary = recipe.run_dir / spec.name / "summary.md"
        if spec.kind == "report" and summary.exists():
            print(summary.read_text())


def cmd_plan(args) -> int:
    from pipeline.run import runner

    recipe = load_recipe(args.recipe, args.overrides)
    if args.rehearse:
        from pipeline.rehearsal import prepare

        reh, recipe = prepare(args.recipe, args.overrides, *rehearsal_args(args))
        print("\n".join(f"stand-in: {note}" for note in reh.notes))
    try:
        decisions = runner.plan(recipe, only=args.only, from_stage=args.from_stage, force=args.force)
    except runner.PlanError as e:
        raise UserFacingError(str(e)) from None
    words = {"run": "will run", "cached": "cached", "skip": "skipped"}
    for d in decisions:
        print(f"{d.stage:<24} {words[d.action]:<9} {d.reason}")
    return 0


def cmd_validate(args) -> int:
    failed = 0
    for path in args.recipes:
        try:
            recipe = load_recipe(path)
            print(f"ok: {path} ({len(recipe.stages)} stages: {', '.join(s.name for s in recipe.stages)})")
        except RecipeError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return EXIT_BAD_INPUT if failed else 0


def cmd_ls(args) -> int:
    import pipeline.stages  # noqa: F401
    from pipeline.run.registry import STAGES

    print("stage kinds:")
    for entry in STAGES.entries():
        print(f"  {entry.name:<22} {entry.help}")
    for title, rows in _listings():
        print(f"{title}:")
        for name, help_text, *params in rows:
            extra = f"  ({', '.join(f'{k}={v!r}' for k, v in params[0].items())})" if params and params[0] else ""
            print(f"  {name:<22} {help_text}{extra}")
    return 0


def _listings():
    import importlib

    for title, module, fn in (("rewards", "rewards", "list_rewards"), ("tasks", "pipeline.tasks", "list_tasks"),
                              ("benchmarks", "pipeline.data.benchmarks", "list_benchmarks"),
                              ("released datasets", "pipeline.data.adapters", "list_released")):
        yield title, getattr(importlib.import_module(module), fn)()


def cmd_cost(args) -> int:
    from pathlib import Path

    from pipeline.run.ledger import format_cost_table

    if not (Path(args.run_dir) / "ledger.jsonl").exists():
        raise UserFacingError(f"{args.run_dir}: no ledger.jsonl here; give a run dir such as runs/quickstart")
    print(format_cost_table(args.run_dir))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
