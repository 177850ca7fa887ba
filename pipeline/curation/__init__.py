"""Curation steps over canonical trace rows: verify, filter, dedup, decontaminate, select, and run_steps.

One module per step, each with a plain function `step(rows, **params) -> StepOutput(rows, dropped, info)` over a
list of row dicts (or a `datasets.Dataset`):

    from pipeline.curation.verify import verify
    from pipeline.curation.filters import filter_rows
    from pipeline.curation.dedup import dedup
    from pipeline.curation.decontaminate import decontaminate, decontaminate_reference
    from pipeline.curation.selection import select

`run_steps` applies a recipe's list of `{step: NAME, **params}` and returns the kept rows with the funnel. The step
functions are not re-exported here on purpose: `pipeline.curation.dedup` must stay the module (a function of the
same name would shadow it). Imports stay light: numpy and friends load inside the functions that use them.
"""

from pipeline.curation.common import StepOutput
from pipeline.curation.steps import STEPS, normalize_step, run_steps, step_params, validate_step, validate_steps

__all__ = ["STEPS", "StepOutput", "normalize_step", "run_steps", "step_params", "validate_step", "validate_steps"]
