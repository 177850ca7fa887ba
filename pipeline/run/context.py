"""What a stage receives (StageContext) and what it leaves behind (StageResult)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.run import artifacts
from pipeline.run.refs import DataRef, ModelRef


@dataclass
class StageResult:
    """What a stage left behind, by role: paths relative to the stage dir when saved, absolute once loaded."""

    dataset: str | None = None  # a `datasets` save_to_disk folder (Dataset or DatasetDict)
    model: str | None = None  # a save_pretrained folder with tokenizer and chat template
    report: str | None = None  # a folder or file of JSON + Markdown + PNG
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict, stage_dir: Path) -> StageResult:
        roles = {k: (str(stage_dir / obj[k]) if obj.get(k) else None) for k in ("dataset", "model", "report")}
        return cls(**roles, metrics=obj.get("metrics", {}))


@dataclass
class StageContext:
    name: str
    kind: str
    stage_dir: Path
    run_dir: Path
    seed: int
    fingerprint: str
    upstream: dict[str, StageResult]
    ledger: Any  # pipeline.run.ledger.Attempt
    log: logging.Logger
    recipe_name: str = ""
    recipe_path: str = ""
    is_main_process: bool = True

    def path(self, rel: str) -> Path:
        p = self.stage_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def upstream_result(self, stage: str) -> StageResult:
        if stage not in self.upstream:
            raise RuntimeError(f"stage '{self.name}' reads from '{stage}', which has not finished (no DONE)")
        return self.upstream[stage]

    def resolve_model(self, ref: ModelRef) -> str | dict:
        """A local folder or hub id to load; {init: tiny} passes through as its parameter dict."""
        if ref.stage:
            model = self.upstream_result(ref.stage).model
            if not model:
                raise RuntimeError(f"stage '{ref.stage}' produced no model for stage '{self.name}'")
            return model
        return ref.path or dict(ref.init)

    def load_model(self, ref: ModelRef, **kwargs):
        from pipeline.training import models

        return models.load_model_and_tokenizer(self.resolve_model(ref), seed=self.seed,
                                               trust_remote_code=ref.trust_remote_code,
                                               config_overrides=ref.config_overrides, **kwargs)

    def load_dataset(self, ref: DataRef):
        from pipeline.data.loading import load_data_ref

        return load_data_ref(ref, self)

    def save_dataset(self, dataset, rel: str = "dataset") -> str:
        artifacts.save_dataset(dataset, self.stage_dir / rel)
        return rel

    def write_json(self, rel: str, obj) -> Path:
        return artifacts.atomic_write_json(self.stage_dir / rel, obj)
