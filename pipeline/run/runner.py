"""Order stages, fingerprint them, skip cached ones, run the rest, write DONE last.

A stage is cached when its DONE marker holds the fingerprint it would have now. The fingerprint covers the
stage's resolved config, the content of local input files (path-typed fields, released-dataset cards, named
benchmarks), the source of the code its kind can reach, and the output ids of the upstream stages it reads (a
fresh id each time a stage finishes), so changing one stage reruns it and exactly what depends on it.

One run at a time holds a run dir (an flock on <run_dir>/.lock). A stage that reruns keeps its last complete
output in .previous/ until the new one is complete; a failed or killed attempt gives it back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipeline.run import artifacts, fingerprint, ledger, manifest
from pipeline.run.context import StageContext, StageResult
from pipeline.run.recipe import Recipe, StageSpec, config_to_plain
from pipeline.run.registry import STAGES

log = logging.getLogger("reasonforge")


HASH_CACHE = ".hash_cache.json"


@dataclass
class Decision:
    stage: str
    action: str  # "run", "cached", "skip"
    reason: str
    fresh: bool = False  # forced (--force, --from): start from nothing instead of resuming


class PlanError(RuntimeError):
    pass


def stage_identity(recipe: Recipe, spec: StageSpec, hasher: fingerprint.ContentHasher) -> dict:
    """config hash, input file hashes, the code the stage kind runs, upstream output ids, hub revisions, and the
    combined fingerprint (None while an upstream stage is unfinished). Hub revisions are recorded, not hashed: a
    model the stage itself downloads resolves only after its first run."""
    plain = config_to_plain(spec.config)
    digest = fingerprint.config_hash(spec.kind, plain)
    named = {p: p for p in fingerprint.local_paths(plain)} | fingerprint.reference_inputs(plain)
    inputs = {label: hasher.hash_path(named[label]) for label in sorted(named)}
    code = fingerprint.code_hashes(STAGES.get(spec.kind).obj.__module__)
    upstream = {}
    for dep in spec.depends_on:
        done = artifacts.read_json(recipe.run_dir / dep / artifacts.DONE)
        upstream[dep] = done["output_id"] if done else None
    ready = all(upstream.values())
    combined = fingerprint.combine(digest, inputs, upstream, code) if ready else None
    return {"config_hash": digest, "inputs": inputs, "code": code, "upstream": upstream,
            "hub": fingerprint.hub_revisions(plain), "fingerprint": combined, "config": plain}


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
    old = done.get("code") or {}
    code = sorted(f for f in set(old) | set(ident["code"]) if old.get(f) != ident["code"].get(f))
    if code:
        return f"code changed ({', '.join(code[:3])}{', ...' if len(code) > 3 else ''})"
    moved = [r for r, c in ident["hub"].items() if c and done.get("hub", {}).get(r) not in (None, c)]
    if moved:
        return f"hub revision changed ({', '.join(moved)})"
    return None


def check_flags(recipe: Recipe, only=None, from_stage=None, force=()) -> None:
    names = [s.name for s in recipe.stages]
    for flag, value in (("--only", only), ("--from", from_stage), *(("--force", f) for f in force)):
        if value and value not in names:
            raise PlanError(f"{flag} {value}: no such stage in {recipe.path}; stages: {', '.join(names)}")


def plan(recipe: Recipe, only: str | None = None, from_stage: str | None = None, force=(),
         hasher: fingerprint.ContentHasher | None = None) -> list[Decision]:
    """What `run` would do and why. Writes nothing (the hash cache is only read here; `run` saves it)."""
    check_flags(recipe, only, from_stage, force)
    names = [s.name for s in recipe.stages]
    hasher = hasher or fingerprint.ContentHasher(recipe.run_dir / HASH_CACHE)
    decisions, will_run = [], set()
    forced = set(force) | (set(names[names.index(from_stage):]) if from_stage else set())
    for spec in recipe.stages:
        decisions.append(_decide(recipe, spec, hasher, only, forced, will_run))
        if decisions[-1].action == "run":
            will_run.add(spec.name)
    return decisions


def _decide(recipe, spec, hasher, only, forced, will_run) -> Decision:
    if only and spec.name != only:
        return Decision(spec.name, "skip", "not selected (--only)")
    fresh = spec.name in forced
    rerunning = [d for d in spec.depends_on if d in will_run]
    if rerunning:
        return Decision(spec.name, "run", f"upstream will rerun ({', '.join(rerunning)})", fresh)
    missing = [d for d in spec.depends_on if not (recipe.run_dir / d / artifacts.DONE).exists()]
    if missing:
        if only:
            raise PlanError(f"--only {spec.name}: upstream {', '.join(missing)} has not finished; run it first")
        return Decision(spec.name, "run", f"upstream not finished ({', '.join(missing)})", fresh)
    if fresh:
        return Decision(spec.name, "run", "forced", True)
    stage_dir = recipe.run_dir / spec.name
    ident = stage_identity(recipe, spec, hasher)
    reason = why_stale(artifacts.read_json(stage_dir / artifacts.DONE),
                       artifacts.read_json(stage_dir / "config.json"), ident)
    return Decision(spec.name, "run", reason) if reason else Decision(spec.name, "cached", "fingerprint matches")


def run(recipe: Recipe, only: str | None = None, from_stage: str | None = None, force=(), launch=None) -> dict:
    """Run what the plan says, holding the run dir's lock; returns {stage: StageResult}. A failing stage stops
    the run (nothing after it)."""
    check_flags(recipe, only, from_stage, force)
    recipe.run_dir.mkdir(parents=True, exist_ok=True)
    owner = takes_lock(recipe, launch)
    lock = artifacts.run_lock(recipe.run_dir) if owner else contextlib.nullcontext()
    try:
        with lock:
            return _run_locked(recipe, only, from_stage, force, launch, owner)
    except artifacts.RunDirBusy as e:
        raise PlanError(str(e)) from None


def takes_lock(recipe: Recipe, launch=None) -> bool:
    """Node 0 of a multi-node launch owns the run dir; the other nodes (machine_rank > 0) only read it."""
    from pipeline.run.launch import machine_rank

    return not any(machine_rank(launch or spec.launch or {}) > 0 for spec in recipe.stages)


def _run_locked(recipe: Recipe, only, from_stage, force, launch, owner: bool = True) -> dict:
    if owner:  # what kills left behind is the owner's to repair; other nodes only read the run dir
        recover(recipe)
    hasher = fingerprint.ContentHasher(recipe.run_dir / HASH_CACHE)
    decisions = plan(recipe, only, from_stage, force, hasher=hasher)
    hasher.save()
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
                results[spec.name] = run_stage(recipe, spec, launch=launch, fresh=decision.fresh)
            done = artifacts.read_json(recipe.run_dir / spec.name / artifacts.DONE) or {}
            manifest.record(run_manifest, recipe, spec.name, decision, hub=done.get("hub"))
    finally:
        manifest.finish(run_manifest, recipe)
    return results


def recover(recipe: Recipe) -> None:
    """Undo what kills left behind, before planning: a stage whose rerun died gets its last complete output back,
    and every attempt left open gets its final ledger row (done if its DONE names it, else killed)."""
    done_rows, stage_dirs = {}, {}
    for spec in recipe.stages:
        stage_dir = recipe.run_dir / spec.name
        if artifacts.restore_previous(recipe.run_dir, spec.name):
            log.warning("[%s] the attempt that was replacing it did not finish: its previous complete output is "
                        "back in place (the unfinished work is kept in %s)", spec.name,
                        artifacts.partial_dir(recipe.run_dir, spec.name))
        done = artifacts.read_json(stage_dir / artifacts.DONE) or {}
        if done.get("ledger"):
            done_rows[spec.name] = done["ledger"]
        stage_dirs[spec.name] = stage_dir
    ledger.close_open_attempts(recipe.run_dir, done_rows, stage_dirs)


def load_result(recipe: Recipe, stage: str) -> StageResult:
    stage_dir = recipe.run_dir / stage
    done = artifacts.read_json(stage_dir / artifacts.DONE)
    if not done:
        raise PlanError(f"stage '{stage}' has no DONE marker in {stage_dir}")
    return StageResult.from_json(done["result"], stage_dir.resolve())


def run_stage(recipe: Recipe, spec: StageSpec, launch=None, fresh: bool = False) -> StageResult:
    """Run one stage in this process (or under `accelerate launch` when it declares launch:). Until the new output
    is complete the last complete one waits in .previous/ and comes back if this attempt fails."""
    launch_cfg = launch or spec.launch
    if launch_cfg:
        from pipeline.run.launch import launch_stage, machine_rank

        if machine_rank(launch_cfg) > 0:  # another node of a multi-node launch: node 0 owns the stage dir
            launch_stage(recipe, spec, launch_cfg)
            return load_result(recipe, spec.name)
    ident = stage_identity(recipe, spec, fingerprint.ContentHasher(recipe.run_dir / HASH_CACHE))
    prepare_stage_dir(recipe.run_dir, spec.name, ident, fresh)
    try:
        if launch_cfg:
            launch_stage(recipe, spec, launch_cfg)
            result = load_result(recipe, spec.name)
        else:
            result = execute_stage(recipe, spec, ident)
    except BaseException:
        if artifacts.restore_previous(recipe.run_dir, spec.name):
            log.warning("[%s] failed: its previous complete output is back in place", spec.name)
        raise
    shutil.rmtree(artifacts.previous_dir(recipe.run_dir, spec.name), ignore_errors=True)
    return result


def prepare_stage_dir(run_dir: Path, stage: str, ident: dict, fresh: bool = False) -> None:
    """A complete output (DONE) is set aside, not deleted; partial work (checkpoints, shards) is kept only if it
    was made under the same fingerprint and the stage is not forced (--force starts from nothing)."""
    stage_dir = Path(run_dir) / stage
    partial = artifacts.partial_dir(run_dir, stage)
    if (stage_dir / artifacts.DONE).exists():
        artifacts.move_replacing(stage_dir, artifacts.previous_dir(run_dir, stage))
    elif stage_dir.exists():
        previous = artifacts.read_json(stage_dir / "config.json")
        if fresh or (previous and previous.get("fingerprint") != ident["fingerprint"]):
            shutil.rmtree(stage_dir)
    if partial.exists():  # an unfinished attempt of an earlier run, set aside when its stage's old output came back
        kept = artifacts.read_json(partial / "config.json") or {}
        if not fresh and not stage_dir.exists() and kept.get("fingerprint") == ident["fingerprint"]:
            os.replace(partial, stage_dir)
            log.info("[%s] resuming the unfinished attempt kept in %s", stage, partial)
        else:
            shutil.rmtree(partial)
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
        attempt.begin()  # the started row is on disk before anything slow (torch, the upstream results) happens
    start = time.time()
    try:
        upstream = {dep: load_result(recipe, dep) for dep in spec.depends_on}
        if recipe.torch_threads:
            import torch

            torch.set_num_threads(recipe.torch_threads)
        ctx = StageContext(spec.name, spec.kind, stage_dir.resolve(), recipe.run_dir.resolve(), recipe.seed,
                           ident["fingerprint"], upstream, attempt,
                           _stage_logger(spec.name, stage_dir, is_main_process), recipe.name, recipe.path,
                           is_main_process)
        result = STAGES.get(spec.kind).obj(spec.config, ctx)
        if is_main_process:
            finish_stage(stage_dir, ident, result, attempt, time.time() - start)
    except BaseException as error:
        if is_main_process:
            with contextlib.suppress(OSError):  # a full disk must not hide the stage's own error
                attempt.finish("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")
        raise
    return StageResult.from_json(result.to_json(), stage_dir.resolve())


def finish_stage(stage_dir: Path, ident: dict, result: StageResult, attempt, seconds: float) -> None:
    """metrics.json, then DONE, then the ledger's `done` row: a kill before DONE leaves no success row, and one
    between DONE and the row is closed as done by the next run (DONE carries the row)."""
    row = attempt.final_row("done")
    metrics = {**result.metrics, "wall_s": round(seconds, 3), "ledger": row}
    artifacts.atomic_write_json(stage_dir / "metrics.json", metrics)
    hub = {repo: commit or fingerprint._cached_commit(repo) for repo, commit in ident.get("hub", {}).items()}
    done = {"fingerprint": ident["fingerprint"], "output_id": uuid.uuid4().hex[:16],
            "config_hash": ident["config_hash"], "inputs": ident["inputs"], "code": ident.get("code"),
            "upstream": ident["upstream"], "hub": hub, "result": result.to_json(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "attempt": attempt.attempt, "ledger": row}
    artifacts.atomic_write_json(stage_dir / artifacts.DONE, done)  # marks the stage complete
    attempt.finish("done", row)


def _stage_logger(name: str, stage_dir: Path, is_main: bool) -> logging.Logger:
    logger = logging.getLogger(f"reasonforge.{name}")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if is_main:
        handler = _QuietFileHandler(stage_dir / "log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger


class _QuietFileHandler(logging.FileHandler):
    """A log file that stays quiet when the disk is full: logging's default prints a traceback for every record,
    and the stage's own next write reports the problem in one line anyway."""

    def handleError(self, record) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)
