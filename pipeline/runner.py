"""Order stages, fingerprint them, skip cached ones, run the rest, write DONE last.

A stage is cached when its DONE marker holds the fingerprint it would have now. The fingerprint covers the
stage's resolved config, the content of local input files, and the output ids of the upstream stages it reads
(a fresh id each time a stage finishes), so changing one stage reruns it and exactly what depends on it.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipeline import artifacts, fingerprint, ledger, manifest
from pipeline.context import StageContext, StageResult
from pipeline.recipe import Recipe, StageSpec, config_to_plain
from pipeline.registry import STAGES

log = logging.getLogger("reasonforge")


@dataclass
class Decision:
    stage: str
    action: str  # "run", "cached", "skip"
    reason: str


class PlanError(RuntimeError):
    pass


def stage_identity(recipe: Recipe, spec: StageSpec, hasher: fingerprint.ContentHasher) -> dict:
    """config hash, input file hashes, upstream output ids, and the combined fingerprint (None if upstream unfinished)."""
    plain = config_to_plain(spec.config)
    digest = fingerprint.config_hash(spec.kind, plain)
    inputs = {p: hasher.hash_path(p) for p in fingerprint.local_paths(plain)}
    upstream = {}
    for dep in spec.depends_on:
        done = artifacts.read_json(recipe.run_dir / dep / artifacts.DONE)
        upstream[dep] = done["output_id"] if done else None
    ready = all(upstream.values())
    combined = fingerprint.combine(digest, inputs, upstream) if ready else None
    return {"config_hash": digest, "inputs": inputs, "upstream": upstream, "fingerprint": combined, "config": plain}


def why_stale(done: dict | None, started: dict | None, ident: dict) -> str | None:
    """None when the DONE marker matches; otherwise the reason a user would want to read."""
    if done is None:
        return "interrupted (no DONE)" if started else "new"
    if done.get("config_hash") != ident["config_hash"]:
        return "config changed"
    changed = [s for s, oid in ident["upstream"].items() if done.get("upstream", {}).get(s) != oid]
    if changed:
        return f"upstream changed ({', '.join(changed)})"
    files = [p for p, h in ident["inputs"].items() if done.get("inputs", {}).get(p) != h]
    if files or set(done.get("inputs", {})) != set(ident["inputs"]):
        return f"input file changed ({', '.join(files) or 'set of inputs'})"
    return None


def plan(recipe: Recipe, only: str | None = None, from_stage: str | None = None, force=()) -> list[Decision]:
    names = [s.name for s in recipe.stages]
    for flag, value in (("--only", only), ("--from", from_stage), *(("--force", f) for f in force)):
        if value and value not in names:
            raise PlanError(f"{flag} {value}: no such stage in {recipe.path}; stages: {', '.join(names)}")
    hasher = fingerprint.ContentHasher(recipe.run_dir / ".hash_cache.json")
    decisions, will_run = [], set()
    forced = set(force) | (set(names[names.index(from_stage):]) if from_stage else set())
    for spec in recipe.stages:
        decisions.append(_decide(recipe, spec, hasher, only, forced, will_run))
        if decisions[-1].action == "run":
            will_run.add(spec.name)
    hasher.save()
    return decisions


def _decide(recipe, spec, hasher, only, forced, will_run) -> Decision:
    if only and spec.name != only:
        return Decision(spec.name, "skip", "not selected (--only)")
    rerunning = [d for d in spec.depends_on if d in will_run]
    if rerunning:
        return Decision(spec.name, "run", f"upstream will rerun ({', '.join(rerunning)})")
    missing = [d for d in spec.depends_on if not (recipe.run_dir / d / artifacts.DONE).exists()]
    if missing:
        if only:
            raise PlanError(f"--only {spec.name}: upstream {', '.join(missing)} has not finished; run it first")
        return Decision(spec.name, "run", f"upstream not finished ({', '.join(missing)})")
    if spec.name in forced:
        return Decision(spec.name, "run", "forced")
    stage_dir = recipe.run_dir / spec.name
    ident = stage_identity(recipe, spec, hasher)
    reason = why_stale(artifacts.read_json(stage_dir / artifacts.DONE),
                       artifacts.read_json(stage_dir / "config.json"), ident)
    return Decision(spec.name, "run", reason) if reason else Decision(spec.name, "cached", "fingerprint matches")


def run(recipe: Recipe, only: str | None = None, from_stage: str | None = None, force=(), launch=None) -> dict:
    """Run what the plan says; returns {stage: StageResult}. A failing stage stops the run (nothing after it)."""
    decisions = plan(recipe, only, from_stage, force)
    recipe.run_dir.mkdir(parents=True, exist_ok=True)
    run_manifest = manifest.start(recipe)
    results: dict[str, StageResult] = {}
    try:
        for decision in decisions:
            spec = recipe.stage(decision.stage)
            if decision.action == "cached":
                log.info("[%s] cached (%s)", spec.name, decision.reason)
                results[spec.name] = load_result(recipe, spec.name)
            elif decision.action == "run":
                log.info("[%s] running: %s", spec.name, decision.reason)
                results[spec.name] = run_stage(recipe, spec, launch=launch)
            manifest.record(run_manifest, recipe, spec.name, decision)
    finally:
        manifest.finish(run_manifest, recipe)
    return results


def load_result(recipe: Recipe, stage: str) -> StageResult:
    stage_dir = recipe.run_dir / stage
    done = artifacts.read_json(stage_dir / artifacts.DONE)
    if not done:
        raise PlanError(f"stage '{stage}' has no DONE marker in {stage_dir}")
    return StageResult.from_json(done["result"], stage_dir.resolve())


def run_stage(recipe: Recipe, spec: StageSpec, launch=None) -> StageResult:
    """Run one stage in this process (or under `accelerate launch` when it declares launch:)."""
    stage_dir = recipe.run_dir / spec.name
    launch_cfg = launch or spec.launch
    if launch_cfg:
        from pipeline.launch import launch_stage, machine_rank

        if machine_rank(launch_cfg) > 0:  # another node of a multi-node launch: node 0 owns the stage dir
            return launch_stage(recipe, spec, launch_cfg)
    ident = stage_identity(recipe, spec, fingerprint.ContentHasher(recipe.run_dir / ".hash_cache.json"))
    prepare_stage_dir(stage_dir, ident)
    if launch_cfg:
        return launch_stage(recipe, spec, launch_cfg)
    return execute_stage(recipe, spec, ident)


def prepare_stage_dir(stage_dir: Path, ident: dict) -> None:
    """Drop DONE first; keep partial work (checkpoints, shards) only if it was made under the same fingerprint."""
    (stage_dir / artifacts.DONE).unlink(missing_ok=True)
    previous = artifacts.read_json(stage_dir / "config.json")
    if previous and previous.get("fingerprint") != ident["fingerprint"]:
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    artifacts.clean_stale_temporaries(stage_dir)
    artifacts.atomic_write_json(stage_dir / "config.json", ident)


def execute_stage(recipe: Recipe, spec: StageSpec, ident: dict, is_main_process: bool = True,
                  processes: int = 1) -> StageResult:
    stage_dir = recipe.run_dir / spec.name
    attempt = ledger.new_attempt(recipe.run_dir, spec.name, spec.kind, recipe.price_per_device_hour, stage_dir,
                                 writer=is_main_process)
    attempt.processes = processes
    if is_main_process:
        attempt.begin()
    upstream = {dep: load_result(recipe, dep) for dep in spec.depends_on}
    if recipe.torch_threads:
        import torch

        torch.set_num_threads(recipe.torch_threads)
    ctx = StageContext(spec.name, spec.kind, stage_dir.resolve(), recipe.run_dir.resolve(), recipe.seed,
                       ident["fingerprint"], upstream, attempt, _stage_logger(spec.name, stage_dir, is_main_process),
                       recipe.name, recipe.path, is_main_process)
    start = time.time()
    try:
        result = STAGES.get(spec.kind).obj(spec.config, ctx)
    except KeyboardInterrupt:
        if is_main_process:
            attempt.finish("interrupted")
        raise
    except BaseException:
        if is_main_process:
            attempt.finish("failed")
        raise
    if is_main_process:
        finish_stage(stage_dir, ident, result, attempt, time.time() - start)
    return StageResult.from_json(result.to_json(), stage_dir.resolve())


def finish_stage(stage_dir: Path, ident: dict, result: StageResult, attempt, seconds: float) -> None:
    row = attempt.finish("done")
    metrics = {**result.metrics, "wall_s": round(seconds, 3), "ledger": row}
    artifacts.atomic_write_json(stage_dir / "metrics.json", metrics)
    done = {"fingerprint": ident["fingerprint"], "output_id": uuid.uuid4().hex[:16],
            "config_hash": ident["config_hash"], "inputs": ident["inputs"], "upstream": ident["upstream"],
            "result": result.to_json(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    artifacts.atomic_write_json(stage_dir / artifacts.DONE, done)  # last: marks the stage complete


def _stage_logger(name: str, stage_dir: Path, is_main: bool) -> logging.Logger:
    logger = logging.getLogger(f"reasonforge.{name}")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if is_main:
        handler = logging.FileHandler(stage_dir / "log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger
