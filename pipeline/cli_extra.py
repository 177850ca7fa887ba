"""Commands that belong to later parts of the pipeline (eval, card), added only when their module exists."""

from __future__ import annotations


def add_commands(sub) -> None:
    import importlib

    for module in ("pipeline.stages.evaluate", "pipeline.cards"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, "add_cli"):
            mod.add_cli(sub)
