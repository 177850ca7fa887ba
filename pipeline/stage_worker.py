"""Entry point of each process that `accelerate launch` starts for one stage (see pipeline/launch.py)."""

from __future__ import annotations

import logging
import os
import sys


def main(recipe_file: str, stage: str) -> int:
    from pipeline import fingerprint, runner
    from pipeline.recipe import load_recipe

    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(name)s %(message)s", datefmt="%H:%M:%S")
    recipe = load_recipe(recipe_file)
    spec = recipe.stage(stage)
    ident = runner.stage_identity(recipe, spec, fingerprint.ContentHasher())
    runner.execute_stage(recipe, spec, ident, is_main_process=rank == 0, processes=world)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
