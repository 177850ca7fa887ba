"""Instrumenting transformers Trainers for the training benchmarks: step clocks, lockstep turns between two
trainers, a profiler of the training loop only, token counts, and patching the trainer class a stage imports.

The stages import TRL's trainer classes at call time (`from trl import SFTTrainer` inside their run function), so
a benchmark swaps in an instrumented subclass with `patched(trl, "SFTTrainer", instrumented(...))` and the stage
builds that; the baseline builds the same subclass itself. Both sides then pay the same for the measurement.
"""

from __future__ import annotations

import contextlib
import cProfile
import itertools
import threading
import time


class StepClock:
    """Times a transformers Trainer from callbacks: train begin/end and every step begin, in wall time and in this
    process's CPU time. A step's interval runs from its on_step_begin to the next one (or to on_train_end), so it
    includes the optimizer step, logging and every other callback: what a user waits for per step. CPU time is what
    other tenants of a shared machine do not inflate (they take cores away, which stretches wall time only)."""

    def __init__(self):
        self.train_begin = self.train_end = None
        self.step_begins: list[tuple[float, float]] = []  # (wall, cpu)

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                clock.train_begin = time.perf_counter()

            def on_step_begin(self, args, state, control, **kwargs):
                clock.step_begins.append((time.perf_counter(), time.process_time()))

            def on_train_end(self, args, state, control, **kwargs):
                clock.train_end = time.perf_counter()
                clock.train_end_cpu = time.process_time()

        return Clock()

    def _intervals(self, which: int) -> list[float]:
        marks = [mark[which] for mark in self.step_begins]
        if self.train_end is not None:
            marks.append(self.train_end if which == 0 else self.train_end_cpu)
        return [b - a for a, b in itertools.pairwise(marks)]

    @property
    def step_seconds(self) -> list[float]:
        return self._intervals(0)

    @property
    def step_cpu_seconds(self) -> list[float]:
        return self._intervals(1)

    @property
    def train_seconds(self) -> float:
        return self.train_end - self.train_begin


class Lockstep:
    """Two trainers in two threads of this process taking turns, one step each: the load other jobs put on a shared
    machine drifts over seconds, and alternate steps see the same drift, so the ratio of their step times holds
    where the ratio of two runs minutes apart does not. A step runs from the moment its trainer gets the turn (at
    on_step_begin) to its next on_step_begin (or on_train_end), so it covers the optimizer, logging and every
    callback; the other trainer waits meanwhile. Wall and thread CPU seconds per step, per trainer. `first` gets the
    first turn; start the other thread once `ready[first_to_start]` is set, so start-ups do not overlap either."""

    def __init__(self, names: tuple[str, str] = ("ours", "baseline"), first: str = "baseline"):
        self.names, self.turn = names, first
        self.cond = threading.Condition()
        self.finished: set[str] = set()
        self.steps: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        self.ready = {n: threading.Event() for n in names}
        self.train_begin: dict[str, float] = {}
        self._started: dict[str, tuple[float, float]] = {}

    def _other(self, name: str) -> str:
        return self.names[1] if name == self.names[0] else self.names[0]

    def end_step(self, name: str) -> None:
        if name in self._started:
            wall, cpu = self._started.pop(name)
            self.steps[name].append((time.perf_counter() - wall, time.thread_time() - cpu))
        with self.cond:
            if self._other(name) not in self.finished:
                self.turn = self._other(name)
            self.cond.notify_all()

    def begin_step(self, name: str) -> None:
        self.ready[name].set()
        with self.cond:
            self.cond.wait_for(lambda: self.turn == name or self._other(name) in self.finished)
        self._started[name] = (time.perf_counter(), time.thread_time())

    def finish(self, name: str) -> None:
        """Called when a trainer ends (or fails): the other one goes on alone."""
        self.ready[name].set()
        with self.cond:
            self.finished.add(name)
            self.cond.notify_all()

    def callback(self, name: str):
        from transformers import TrainerCallback

        lock = self

        class Turns(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                lock.train_begin[name] = time.perf_counter()

            def on_step_begin(self, args, state, control, **kwargs):
                lock.end_step(name)
                lock.begin_step(name)

            def on_train_end(self, args, state, control, **kwargs):
                lock.end_step(name)
                lock.finish(name)

        return Turns()


class LoopProfiler:
    """cProfile of a Trainer's training loop only: on from the begin of step `skip` (the first steps pay one-off
    costs) to the end of training; model loading, data preparation and saving stay out of the profile."""

    def __init__(self, skip: int = 1):
        self.skip, self.profile, self.running = skip, cProfile.Profile(), False

    def callback(self):
        from transformers import TrainerCallback

        outer = self

        class Profiler(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if state.global_step == outer.skip and not outer.running:
                    outer.running = True
                    outer.profile.enable()

            def on_train_end(self, args, state, control, **kwargs):
                if outer.running:
                    outer.profile.disable()
                    outer.running = False

        return Profiler()


class TokenCounter:
    """Counts the tokens of every training forward pass with a forward pre-hook: `real` (attention mask) and
    `padded` (the batch area), so padding is measured, not estimated."""

    def __init__(self):
        self.real = self.padded = self.batches = 0

    def attach(self, model) -> None:
        def hook(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None or not module.training:
                return
            mask = kwargs.get("attention_mask")
            self.real += int(mask.sum()) if mask is not None else ids.numel()
            self.padded += ids.numel()
            self.batches += 1

        model.register_forward_pre_hook(hook, with_kwargs=True)


def instrumented(trainer_cls, clocks: list, counters: list | None = None, profiler: LoopProfiler | None = None,
                 configs: list | None = None, lockstep: tuple[Lockstep, str] | None = None):
    """A subclass of `trainer_cls` that adds a StepClock (appended to `clocks`), when `counters` is a list a
    TokenCounter on the model, the `profiler`'s callback, the `lockstep` turns under its name, and appends its args
    to `configs` when that is a list. The same subclass times ours and the baseline, so both pay the same for it."""

    class Instrumented(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            clock = StepClock()
            self.add_callback(clock.callback())
            clocks.append(clock)
            if counters is not None:
                counter = TokenCounter()
                counter.attach(self.model)
                counters.append(counter)
            if profiler is not None:
                self.add_callback(profiler.callback())
            if configs is not None:
                configs.append(self.args)
            if lockstep is not None:
                self.add_callback(lockstep[0].callback(lockstep[1]))

    Instrumented.__name__ = trainer_cls.__name__
    return Instrumented


@contextlib.contextmanager
def patched(module, name: str, value):
    """module.name = value inside the block (the stages import trl's trainers at call time, so they see it)."""
    had = name in vars(module)
    old = vars(module).get(name)
    setattr(module, name, value)
    try:
        yield
    finally:
        if had:
            setattr(module, name, old)
        else:
            delattr(module, name)
