"""Run a recipe's rehearsal stage by stage: run, rehearse the resume, check, measure, project; then one table.

Each stage runs through the ordinary runner (`runner.run(recipe, only=STAGE)`), so caching, fingerprints, the ledger
and `launch:` are the real ones. A training stage is then resumed once the way a crash would leave it: its DONE,
its saved model and its newest checkpoint are removed and the stage runs again; it must continue from the older
checkpoint to the same final step. A stage that fails ends the rehearsal (its line says why, later stages are
"not reached").
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.rehearsal import checks, projection
from pipeline.rehearsal.transform import TRAINER, Rehearsal

log = logging.getLogger("reasonforge.rehearsal")

TRAINING_KINDS = ("sft", "grpo", "reward_model", "distill")
MODEL_KINDS = TRAINING_KINDS + ("generate", "evaluate")


@dataclass
class StageReport:
    stage: str
    kind: str
    status: str = "not reached"  # passed | failed | not reached
    error: str | None = None
    checks: list[tuple] = field(default_factory=list)
    cost: projection.StageCost | None = None


@contextlib.contextmanager
def rehearsal_env(keep_rows: list[str]):
    """Tell the curate stages that read a random model's samples, in this process and the stages it launches, to
    keep rows a step would drop entirely (pipeline.rehearsal.keeps_rows)."""
    from pipeline.rehearsal import KEEP_ROWS_ENV

    before = os.environ.get(KEEP_ROWS_ENV)
    os.environ[KEEP_ROWS_ENV] = ",".join(keep_rows)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(KEEP_ROWS_ENV, None)
        else:
            os.environ[KEEP_ROWS_ENV] = before


def run_rehearsal(reh: Rehearsal, recipe) -> list[StageReport]:
    """Every stage in order; stops at the first failure."""
    from pipeline.run import runner

    reports = [StageReport(spec.name, spec.kind) for spec in recipe.stages]
    measure = Measurements(reh, recipe)
    with rehearsal_env(reh.keep_rows):
        for report, spec in zip(reports, recipe.stages):
            try:
                runner.run(recipe, only=spec.name)
                if spec.kind in TRAINING_KINDS:
                    _rehearse_resume(recipe, spec)
                report.checks = stage_checks(reh, recipe, spec, measure)
                report.cost = measure.cost(spec)
            except Exception as error:  # noqa: BLE001 - the table reports it; the traceback goes to the log
                log.debug("rehearsal of %s failed:\n%s", spec.name, traceback.format_exc())
                report.status, report.error = "failed", _one_line(error)
                break
            failed = [c for c in report.checks if c[1] is False]
            report.status = "failed" if failed else "passed"
            if failed:
                report.error = "; ".join(f"{c[0]}: {c[2]}" for c in failed)
    return reports


def _rehearse_resume(recipe, spec) -> None:
    """Remove what the end of training wrote (DONE, model/, the newest checkpoint) and run the stage again."""
    from pipeline.run import runner

    stage_dir = recipe.run_dir / spec.name
    found = sorted((stage_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if len(found) < 2:
        raise RuntimeError(f"resume not rehearsed: {len(found)} checkpoint(s) in {stage_dir / 'checkpoints'}")
    shutil.rmtree(found[-1])
    shutil.rmtree(stage_dir / "model", ignore_errors=True)
    (stage_dir / "DONE").unlink()
    log.info("rehearsal: %s resumes from %s", spec.name, found[-2].name)
    runner.run(recipe, only=spec.name)


def stage_checks(reh: Rehearsal, recipe, spec, measure: Measurements) -> list[tuple]:
    from pipeline.run import artifacts

    out = []
    real = reh.real.get(spec.name, {})
    for source in measure.model_sources(spec) if spec.kind in MODEL_KINDS else []:
        out += [(f"{c[0]} [{_short(source)}]", *c[1:]) for c in measure.model_checks(source, real.get("eos_token"))]
    metrics = artifacts.read_json(recipe.run_dir / spec.name / "metrics.json") or {}
    if spec.kind in TRAINING_KINDS:
        out.append(checks.resume_check(metrics, TRAINER["max_steps"]))
        folder = recipe.run_dir / spec.name / "model"
        out.append(checks.reload_check(str(folder), spec.kind))
    if spec.kind == "sft":
        out.append(checks.truncation_check(measure.lengths(spec), real.get("max_length")))
    if spec.kind == "grpo":
        out.append(checks.reward_none_check(measure.reward_specs(spec), measure.grpo_rows(spec)))
    return out


class Measurements:
    """Loads what a check or the projection needs (data through the stage's own loading, tokenizers of the models
    the stage reads) once, and remembers each stage's full-scale rows and model shape for those downstream."""

    def __init__(self, reh: Rehearsal, recipe):
        self.reh, self.recipe = reh, recipe
        self.rows_out: dict[str, int | None] = {}
        self.shapes: dict[str, object] = {}  # stage -> FLOPs shape (compute.ModelShape) of the model it produced
        self._model_checks: dict[str, list] = {}
        self._lengths: dict[str, list[int]] = {}
        self._tokenizers: dict[str, object] = {}

    def context(self, spec):
        from pipeline.run import runner
        from pipeline.run.context import StageContext

        upstream = {dep: runner.load_result(self.recipe, dep) for dep in spec.depends_on}
        return StageContext(spec.name, spec.kind, (self.recipe.run_dir / spec.name).resolve(),
                            self.recipe.run_dir.resolve(), self.recipe.seed, "", upstream, None, log)

    def model_sources(self, spec) -> list[str]:
        """Hub ids / paths as written in the recipe that this stage loads (shrunk in the rehearsal)."""
        body = self.reh.original["stages"][spec.name]
        text = repr(body)
        return [source for source in self.reh.models if repr(source) in text]

    def model_checks(self, source: str, eos_token: str | None) -> list:
        key = f"{source}|{eos_token}"
        if key not in self._model_checks:
            self._model_checks[key] = checks.model_checks(self.reh.models[source]["folder"], eos_token)
        return self._model_checks[key]

    def tokenizer(self, spec):
        """The tokenizer of the model the stage reads (loaded once per folder: a 150k vocabulary takes seconds)."""
        from pipeline.training import models

        folder = self.context(spec).resolve_model(spec.config.model)
        if isinstance(folder, dict):
            return models.build_char_tokenizer()
        if str(folder) not in self._tokenizers:
            tokenizer = models.load_tokenizer(folder)
            tokenizer.chat_template = tokenizer.chat_template or models.chat_template_for(tokenizer)
            self._tokenizers[str(folder)] = tokenizer
        return self._tokenizers[str(folder)]

    def lengths(self, spec) -> list[int]:
        if spec.name not in self._lengths:
            ctx = self.context(spec)
            tokenizer = self.tokenizer(spec)
            data = [ctx.load_dataset(ref) for ref in spec.config.data_refs()]
            self._lengths[spec.name] = [n for d in data
                                        for n in checks.trace_lengths(d, tokenizer, spec.config.system_prompt)]
        return self._lengths[spec.name]

    def reward_specs(self, spec) -> list[dict]:
        from pipeline.stages.grpo import resolve_reward_specs

        return resolve_reward_specs(spec.config.rewards, self.context(spec))

    def grpo_rows(self, spec):
        from pipeline.stages.grpo import build_prompts

        return build_prompts(self.context(spec).load_dataset(spec.config.data), spec.config)

    def cost(self, spec) -> projection.StageCost:
        from pipeline.rehearsal.costs import stage_cost

        return stage_cost(self, spec)


def _short(source: str) -> str:
    return source.rstrip("/").rsplit("/", 1)[-1]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def rehearsal_recipe_path(reh: Rehearsal) -> Path:
    return Path(reh.raw["run_dir"]) / "rehearsal.yaml"
