"""Entry point of each process that `accelerate launch` starts for one stage (see pipeline/run/launch.py).

Every rank loads the recipe the parent wrote, computes the stage's identity and runs the stage function; rank 0
(RANK, global over all nodes) is the main process: it alone writes artifacts, the ledger row and DONE. All ranks
meet at a barrier after the stage, so none exits before rank 0 has written DONE: a node whose processes end first
would otherwise report a stage without DONE, and Slurm's --kill-on-bad-exit would kill rank 0 mid-write.
"""

from __future__ import annotations

import logging
import os
import sys


def main(recipe_file: str, stage: str) -> int:
    from pipeline.run import fingerprint, runner
    from pipeline.run.recipe import load_recipe
    from pipeline.training import common as training

    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(name)s %(message)s", datefmt="%H:%M:%S")
    recipe = load_recipe(recipe_file)
    spec = recipe.stage(stage)
    ident = runner.stage_identity(recipe, spec, fingerprint.ContentHasher())
    runner.execute_stage(recipe, spec, ident, is_main_process=rank == 0, processes=world)
    training.wait_for_everyone()
    _close_process_group()
    return 0


def _close_process_group() -> None:
    """Tear the process group down so torch does not warn about a leaked one at exit."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
