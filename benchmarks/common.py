"""What every benchmark shares: arguments and sizes, machine facts, profiler summaries, peak memory, recipes, and
the one JSON object each script prints (trainer instrumentation is in benchmarks/trainers.py).

Every script prints ONE JSON object on its last stdout line, with these keys:
    benchmark  script name                    size      full | quick | smoke
    headline   {metric, ours, baseline}: the two figures the ratio is made of
    figures    the measured numbers (ours, baseline, per-run detail)
    ratio      the headline ratio against the baseline measured in the same run on the same data
    target     the target, as text ("ratio >= 1.5")   met    whether the ratio meets it
    baseline   what the baseline is                    machine  cpu count, torch threads, torch version, device, load
    ratios     every ratio, {"ratio_vs_NAME": x}       baselines  {NAME: exactly what was run, with which settings}
               (the headline ratio is the one against the strongest baseline)
    limits     what limits ours, from the profile      profile  the profiler's top entries and time per bucket
    seconds    wall time of the whole benchmark
Absolute times drift on shared machines; a ratio holds better the closer in time its two sides were measured. So
the sides alternate: whole runs, best of each side (sft, generate, curate's decontamination); steps in lockstep
(grpo, benchmarks/trainers.py: its 5% target is inside the run-to-run drift); batches in turn (rewards). Each
script's docstring says which, and every run is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import sys
import threading
import time
from pathlib import Path

from typing_extensions import Self

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py`: make `benchmarks` and `pipeline` importable
    sys.path.insert(0, str(REPO))

# Offline, always: a benchmark must never download a model or a dataset. Set before transformers is imported.
for _key, _value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                     ("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
    os.environ.setdefault(_key, _value)

SIZES = ("full", "quick", "smoke")
RESULT_KEYS = ("benchmark", "size", "headline", "figures", "ratio", "target", "met", "baseline", "machine", "limits",
               "profile", "seconds", "ratios", "baselines")


def parse_args(doc: str, argv=None) -> argparse.Namespace:
    """--quick / --smoke pick the size (full by default); --threads sets torch's intra-op threads."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="sizes that run in well under a minute here")
    group.add_argument("--smoke", action="store_true", help="the smallest sizes: checks that the script runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: tiny models are bound by per-op overhead, and two "
                             "threads on 2 shared cores were several times slower)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per side (default: by size)")
    args = parser.parse_args(argv)
    args.size = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.threads < 1 or (args.repeats is not None and args.repeats < 1):
        parser.error("--threads and --repeats must be positive integers")
    return args


def start(doc: str, argv, sizes: dict) -> tuple[argparse.Namespace, dict, float]:
    """What every benchmark's main does first: its arguments, the torch thread count (recorded in the JSON even
    where no torch work runs), its size preset, and the start time."""
    args = parse_args(doc, argv)
    set_threads(args.threads)
    return args, sizes[args.size], time.perf_counter()


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def machine() -> dict:
    """The facts a reader needs to compare figures: cores, threads, versions, device, and how busy the box was."""
    import platform

    import torch

    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    device = f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    return {"cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu": cpu,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "device": device,
            "python": platform.python_version(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def _label(key: tuple) -> str:
    file, line, name = key
    if file == "~":
        return name
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{line}({name})"


def cprofile(fn, *args, top: int = 8, buckets: dict[str, tuple[str, ...]] | None = None, **kwargs):
    """(fn's result, summary): see `summarize`. Only the calling thread is profiled: time spent waiting on a worker
    process shows up as the wait."""
    profile = cProfile.Profile()
    result = profile.runcall(fn, *args, **kwargs)
    return result, summarize(profile, top, buckets)


def summarize(profile: cProfile.Profile, top: int = 8, buckets: dict[str, tuple[str, ...]] | None = None,
              own_code: tuple[str, ...] = ()) -> dict:
    """cProfile's top `top` functions by own time, and own time summed per bucket (a function goes to the first
    bucket with a substring of its label; the rest is "other"). With `own_code` (label substrings, e.g.
    "pipeline/"), also `own_code_share`: the cumulative time of the outermost calls into that code (everything it
    does, the libraries it calls included), as a share of the profiled time."""
    stats = pstats.Stats(profile).stats  # {key: (primitive calls, calls, tottime, cumtime, callers)}
    total = sum(entry[2] for entry in stats.values()) or 1e-9
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
    entries = [{"function": _label(key), "own_s": round(entry[2], 3), "share": round(entry[2] / total, 3),
                "calls": entry[1]} for key, entry in ranked[:top]]
    shares: dict[str, float] = {}
    for key, entry in stats.items():
        label = _label(key)
        bucket = next((name for name, parts in (buckets or {}).items() if any(p in label for p in parts)), "other")
        shares[bucket] = shares.get(bucket, 0.0) + entry[2]
    out = {"tool": "cProfile", "profiled_s": round(total, 3), "top": entries,
           "buckets": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}}
    if own_code:
        def ours(key) -> bool:
            return any(part in _label(key) for part in own_code)

        # The cumulative time of calls made into our code from outside it (cProfile keeps it per caller), so a call
        # from our code into our code is not counted twice.
        inside = sum(timing[3] for key, entry in stats.items() if ours(key)
                     for caller, timing in entry[4].items() if not ours(caller))
        out["own_code_share"] = round(min(1.0, inside / total), 4)
    return out


def dominant(profile: dict) -> str:
    """The biggest bucket of a cprofile summary that is not "other"."""
    return next((name for name in profile["buckets"] if name != "other"), "other")


def describe_buckets(profile: dict, count: int = 3) -> str:
    """'backward 48%, forward ops 30%, other 12%': the biggest buckets of a cprofile summary."""
    return ", ".join(f"{name} {share:.0%}" for name, share in list(profile["buckets"].items())[:count])


class PeakRSS:
    """Peak resident memory of this process while the block runs, sampled every `interval` s from /proc/self/statm
    (a thread; ru_maxrss cannot say which step a peak belongs to). `peak_mb` and `delta_mb` (above the start)."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_mb, self.start_mb = interval, 0.0, 0.0
        self._stop = threading.Event()

    @staticmethod
    def current_mb() -> float:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.current_mb())

    def __enter__(self) -> Self:
        self.start_mb = self.peak_mb = self.current_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.current_mb())

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.start_mb


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_recipe(folder: Path, stages: dict, name: str = "bench") -> Path:
    """A recipe file in `folder` whose runs go to `folder/run`."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": name, "seed": 0, "run_dir": str(folder / "run"), "stages": stages},
                                   sort_keys=False))
    return path


def run_recipe(path: Path) -> dict:
    """{stage: StageResult} of `reasonforge run path`, in this process."""
    from pipeline.run import runner
    from pipeline.run.recipe import load_recipe

    return runner.run(load_recipe(path))


def stage_metrics(folder: Path, stage: str) -> dict:
    return json.loads((folder / "run" / stage / "metrics.json").read_text())


def save_tiny_model(folder: Path, params: dict) -> Path:
    """A saved random-init tiny Llama with our char tokenizer and chat template (what the tests use, sized)."""
    from pipeline.training import models

    tokenizer = models.build_char_tokenizer()
    models.save_model(models.build_tiny_model(params, tokenizer, seed=0), tokenizer, folder)
    return folder


def stdout_to_stderr():
    """Inside the block, whatever prints to stdout (Trainer's log dicts, tqdm.write) goes to stderr, so that the
    benchmark's JSON object is the only thing on stdout."""
    return contextlib.redirect_stdout(sys.stderr)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def finish(benchmark: str, args, started: float, *, headline: tuple[str, float, float], figures: dict, ratio: float,
           target: str, met: bool, baseline: str, limits: str, profile: dict, ratios: dict | None = None,
           baselines: dict | None = None, **extra) -> dict:
    """The benchmark's JSON object, printed as one line on stdout and returned. `headline` is (what is measured,
    ours, baseline): the figures the ratio is made of. `ratios` ({"ratio_vs_NAME": x}) and `baselines` ({NAME:
    what was run}) name every baseline; by default the one `ratio` against `baseline`."""
    metric, ours, base = headline
    ratios = {k: round(v, 3) for k, v in (ratios or {"ratio_vs_baseline": ratio}).items()}
    extra = {**extra, "ratios": ratios, "baselines": baselines or {"baseline": baseline}}
    result = {"benchmark": benchmark, "size": args.size,
              "headline": {"metric": metric, "ours": ours, "baseline": base}, "figures": figures,
              "ratio": round(ratio, 3),
              "target": target, "met": bool(met), "baseline": baseline, "machine": machine(), "limits": limits,
              "profile": profile, **extra, "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(result), flush=True)
    return result
