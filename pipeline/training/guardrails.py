"""GRPO guardrails: catch the runs that burn compute without learning, from the metrics TRL already logs.

Three dynamic checks read each log of `trl.GRPOTrainer` (names verified in trl 1.16 grpo_trainer.py):

- no_eos:     `completions/clipped_ratio` is 1.0, i.e. not one completion ended with EOS (TRL then also logs
              `completions/mean_terminated_length` as 0). The model never stops: usually an EOS the chat template,
              tokenizer and generation config disagree on, or a base model that was never taught to end a turn.
- truncation: `completions/clipped_ratio` above `max_clipped_ratio`. A cut completion has no final answer and no
              closing tag, so accuracy and format rewards score it 0 whatever its reasoning was.
- zero_std:   `frac_reward_zero_std` above `max_zero_std_frac`. A group whose completions all get the same reward
              has zero advantage: no gradient. A run where most groups agree is spending compute on nothing.

Every log past a threshold is a warning. Past it for `patience` consecutive logs, the guardrail trips. With
`action: stop` (the default) the callback asks the Trainer to save a checkpoint and stop; the grpo stage then fails
with the one-line reason (the model is not marked done, the checkpoint stays in the stage dir). With `action: warn`
training goes on and the trip is only recorded in the stage's metrics.

A fourth, static check runs before training (`check_prefill`): a chat template whose generation prompt already ends
with `<think>` makes the model start inside the think block, so it never writes the opening tag, and a format
reward that expects it scores 0 on every completion unless told the prompt prefilled it.

Logs without the metric (e.g. the final `train_runtime` summary) neither count towards a streak nor reset it.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CLIPPED = "completions/clipped_ratio"
ZERO_STD = "frac_reward_zero_std"
TERMINATED = "completions/mean_terminated_length"
FORMAT_REWARDS = ("think_format", "tag_count")


class GuardrailError(RuntimeError):
    """A GRPO guardrail stopped training; the message is one line with the reason and the fix."""


@dataclass
class Guardrails:
    action: str = "stop"  # "stop": checkpoint, stop, fail the stage with the reason; "warn": log and go on
    patience: int = 5  # consecutive logging steps past a threshold before the guardrail trips
    max_clipped_ratio: float | None = 0.5  # truncation: fraction of completions cut at max_completion_length
    max_zero_std_frac: float | None = 0.95  # zero_std: fraction of groups whose rewards all agree
    no_eos: bool = True  # trip when no completion at all ends with EOS
    check_prefill: bool = True  # static check: template prefills <think> while a format reward expects it

    @classmethod
    def from_dict(cls, values: dict | None) -> Guardrails:
        """Validated settings; ValueError naming the key and the fix on unknown keys or bad values."""
        values = dict(values or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
                raise ValueError(f"guardrails.{key}: unknown key; {hint}")
        g = cls(**values)
        g.validate()
        return g

    def validate(self) -> None:
        if self.action not in ("stop", "warn"):
            raise ValueError(f"guardrails.action: '{self.action}' is not allowed; use 'stop' or 'warn'")
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 1:
            raise ValueError(f"guardrails.patience: must be an integer >= 1 (logging steps), got {self.patience!r}")
        for key in ("max_clipped_ratio", "max_zero_std_frac"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0.0 <= value <= 1.0):
                raise ValueError(f"guardrails.{key}: must be a fraction in [0, 1] or null to disable, got {value!r}")
        for key in ("no_eos", "check_prefill"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(  # noqa: TRY004 - recipe mistakes are ValueErrors, the one kind the loader reports
                    f"guardrails.{key}: must be true or false, got {getattr(self, key)!r}")


@dataclass
class Trip:
    name: str  # no_eos | truncation | zero_std
    step: int
    value: float
    message: str  # one line: what, since when, the fix

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class GuardrailMonitor:
    """Reads GRPO logs one at a time; counts streaks; returns the Trip that made training stop, if any.

    `context` fills the messages: max_completion_length, eos_token, eos_token_id.
    """

    settings: Guardrails
    context: dict = field(default_factory=dict)
    logger: logging.Logger = log
    streaks: dict = field(default_factory=dict)
    warnings: int = 0
    trips: list = field(default_factory=list)  # every trip (with action warn several can happen)
    stopped_by: Trip | None = None
    last_reward: float | None = None

    def observe(self, logs: dict, step: int) -> Trip | None:
        """Update the streaks from one log; return a Trip when one trips now and action is stop, else None."""
        tripped_now = []
        self.last_reward = _number(logs.get("reward"))
        for name, value, over in self._checks(logs):
            if not over:
                self.streaks[name] = 0
                continue
            self.streaks[name] = self.streaks.get(name, 0) + 1
            self.warnings += 1
            message = self._message(name, value, step, self.streaks[name])
            self.logger.warning("guardrail %s (patience %d): %s", name, self.settings.patience, message)
            if self.streaks[name] == self.settings.patience:
                tripped_now.append(Trip(name, step, value, message))
        if not tripped_now:
            return None
        self.trips += tripped_now
        # no_eos explains truncation too; report the most specific diagnosis first
        trip = tripped_now[0]
        if self.settings.action == "stop" and self.stopped_by is None:
            self.stopped_by = trip
            return trip
        return None

    def _checks(self, logs: dict):
        """(name, value, is_over_threshold) for each check whose metric is in this log and enabled."""
        clipped = _number(logs.get(CLIPPED))
        zero_std = _number(logs.get(ZERO_STD))
        s = self.settings
        if clipped is not None and s.no_eos:
            yield "no_eos", clipped, clipped >= 1.0 - 1e-9
        if clipped is not None and s.max_clipped_ratio is not None:
            yield "truncation", clipped, clipped > s.max_clipped_ratio
        if zero_std is not None and s.max_zero_std_frac is not None:
            yield "zero_std", zero_std, zero_std > s.max_zero_std_frac

    def _message(self, name: str, value: float, step: int, n: int) -> str:
        """One line: what was seen, over how many consecutive logs (n) up to which step, and the fix."""
        c, span = self.context, f"{n} logging steps in a row" if n > 1 else "a logging step"
        length = c.get("max_completion_length", "?")
        if name == "no_eos":
            return (f"no completion ended with EOS ({c.get('eos_token')!r}, id {c.get('eos_token_id')}) for "
                    f"{span} up to step {step} ({CLIPPED} = 1.0): the model never stops. Fix: SFT it first "
                    f"so it learns to end the turn with EOS, check the chat template ends turns with the EOS the "
                    f"generation config stops on, or raise trainer.max_completion_length (now {length})")
        if name == "truncation":
            return (f"{value:.0%} of completions were cut at max_completion_length={length} for {span} "
                    f"up to step {step} ({CLIPPED} > guardrails.max_clipped_ratio={self.settings.max_clipped_ratio}); "
                    f"a cut completion loses its answer and format reward. Fix: raise trainer.max_completion_length, "
                    f"add a length reward (soft_overlong), or set trainer.mask_truncated_completions: true")
        mean = f", mean reward {self.last_reward:.3g}" if self.last_reward is not None else ""
        return (f"{value:.0%} of prompt groups got identical rewards for {span} up to step {step} "
                f"({ZERO_STD} > guardrails.max_zero_std_frac={self.settings.max_zero_std_frac}{mean}): they give "
                f"no gradient. Fix: raise trainer.num_generations or trainer.temperature, use prompts of the right "
                f"difficulty (start from an SFT model), or add a denser reward such as think_format")

    def summary(self) -> dict:
        return {"settings": dataclasses.asdict(self.settings), "warnings": self.warnings,
                "trips": [t.to_json() for t in self.trips],
                "stopped_by": self.stopped_by.to_json() if self.stopped_by else None}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def guardrail_callback(monitor: GuardrailMonitor):
    """A transformers TrainerCallback that feeds every log to `monitor` and, when it trips with action stop,
    asks the Trainer to save a checkpoint at this step and end training (it saves right after on_log)."""
    from transformers import TrainerCallback

    class GuardrailCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and monitor.observe(logs, state.global_step) is not None:
                control.should_save = True
                control.should_training_stop = True
            return control

    return GuardrailCallback()


def check_prefill(tokenizer, reward_specs: list[dict]) -> None:
    """Raise GuardrailError when the generation prompt ends with <think> while think_format/tag_count expects
    the model to write it (and the reward was not told, with `prefilled: true`, to put the tag back)."""
    if not getattr(tokenizer, "chat_template", None):
        return
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "1+1"}], add_generation_prompt=True,
                                             tokenize=False)
    if not rendered.rstrip().endswith("<think>"):
        return
    for spec in reward_specs:
        if spec.get("name") in FORMAT_REWARDS and spec.get("prefilled") is not True:
            raise GuardrailError(
                f"the chat template's generation prompt ends with '<think>' (it prefills the think tag), so the model "
                f"never writes it and reward '{spec['name']}' would score 0 on every completion. Fix: add "
                f"`prefilled: true` to the {spec['name']} reward (it puts the tag back), or use a chat template "
                f"that does not prefill <think> (guardrails.check_prefill: false skips this check)")
