"""run_steps: a list of step specs ({step: NAME, **params}) applied in order, with a funnel of what each dropped.

The funnel is plain JSON: rows in; per step its name, params, rows in/out, rows dropped per reason (and the step's
own figures: benchmarks flagged, verify's threshold, dedup's groups, ...) and seconds; rows out; and the columns
the steps wrote, so a caller that kept the original rows can take those columns from the result.
"""

from __future__ import annotations

import difflib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.curation import decontaminate, dedup, filters, selection, verify
from pipeline.curation.common import as_rows


@dataclass(frozen=True)
class Step:
    fn: Callable
    check: Callable[[dict], None]
    writes: tuple[str, ...] = ()  # columns the step adds or overwrites on the rows it keeps


STEPS = {
    "verify": Step(verify.verify, verify.check, verify.WRITES),
    "filter": Step(filters.filter_rows, filters.check),
    "dedup": Step(dedup.dedup, dedup.check),
    "decontaminate": Step(decontaminate.decontaminate, decontaminate.check, ("contaminated",)),
    "select": Step(selection.select, selection.check),
}
_INJECTED = ("seed",)  # filled in by run_steps from the stage's seed, never from the spec


def step_params(name: str) -> list[str]:
    """The parameters a step spec may set."""
    signature = inspect.signature(STEPS[name].fn)
    return [p for p in signature.parameters if p != "rows" and p not in _INJECTED]


def _closest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def normalize_step(spec):
    """The spec with YAML 1.1's reading of a bare `on:` key (the boolean True) put back as "on"."""
    if isinstance(spec, dict) and True in spec and "on" not in spec:
        return {("on" if k is True else k): v for k, v in spec.items()}
    return spec


def validate_step(spec, where: str = "step") -> None:
    """Raise ValueError naming the bad step or parameter and the valid ones (TypeError: a spec of the wrong type)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("step"), str):
        raise TypeError(f"{where}: a step is a mapping with a 'step' key, e.g. {{step: dedup, on: problem}}; "
                         f"steps: {', '.join(STEPS)}")
    name = spec["step"]
    if name not in STEPS:
        raise ValueError(f"{where}: unknown step '{name}': {_closest(name, list(STEPS))}valid steps: "
                         f"{', '.join(STEPS)}")
    valid = step_params(name)
    for key in spec:
        if key != "step" and key not in valid:
            raise ValueError(f"{where}: unknown parameter '{key}' for step '{name}': {_closest(str(key), valid)}"
                             f"valid parameters: {', '.join(valid)}")
    try:
        STEPS[name].check({k: v for k, v in spec.items() if k != "step"})
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where} ({name}): {error}") from None


def validate_steps(steps) -> None:
    if not isinstance(steps, list):
        raise TypeError("steps must be a list like [{step: verify}, {step: dedup, on: problem}]")
    for i, spec in enumerate(steps):
        validate_step(normalize_step(spec), f"steps[{i}]")


def run_steps(rows, steps: list[dict], seed: int = 0, log=None,
              keep_when_empty: bool = False) -> tuple[list[dict], dict]:
    """Apply `steps` in order to `rows` (a list of canonical row dicts, or a Dataset); returns (rows, funnel).
    keep_when_empty: a step that would drop every row keeps its input instead (a rehearsal's random-model samples)."""
    steps = [normalize_step(spec) for spec in steps]
    validate_steps(steps)
    rows = as_rows(rows)
    funnel: dict = {"rows_in": len(rows), "steps": [], "rows_out": None, "columns_written": []}
    for spec in steps:
        name = spec["step"]
        step = STEPS[name]
        params = {k: v for k, v in spec.items() if k != "step"}
        if "seed" in inspect.signature(step.fn).parameters:
            params["seed"] = seed
        start, rows_in = time.perf_counter(), len(rows)
        kept_before = rows
        rows, dropped, info = step.fn(rows, **params)
        if not rows and kept_before and keep_when_empty:
            rows, info = kept_before, {**info, "rehearsal_kept_rows": len(kept_before)}
            if log is not None:
                log.warning("rehearsal: %s dropped every row (a random model's samples); keeping its %d input rows "
                            "so that later stages are rehearsed", name, len(kept_before))
        entry = {"step": name, "params": {k: v for k, v in spec.items() if k != "step"}, "rows_in": rows_in,
                 "rows_out": len(rows), "dropped": dropped, **info,
                 "seconds": round(time.perf_counter() - start, 3)}
        funnel["steps"].append(entry)
        written = [c for c in step.writes if rows and c in rows[0]]
        funnel["columns_written"] += [c for c in written if c not in funnel["columns_written"]]
        if log is not None:
            log.info("curate %s: %d -> %d rows, dropped %s", name, rows_in, len(rows), dropped or "none")
    funnel["rows_out"] = len(rows)
    return rows, funnel
