"""Run every benchmark, each in a fresh process, and print one JSON object per benchmark (one line each, in order).

    python benchmarks/run_all.py            # full sizes (`make bench`)
    python benchmarks/run_all.py --quick    # the whole set in a few minutes
    python benchmarks/run_all.py --smoke --only curate_scale reward_throughput --out results.jsonl

A fresh process per benchmark keeps one's threads, caches and memory peak out of the next one's figures. A
benchmark that fails prints {"benchmark", "size", "error"} with the tail of its stderr instead, and the exit status
is then 1; a missed target is a result, not a failure. A markdown table of the results goes to stderr (and to
--table FILE), ready for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("reward_throughput", "curate_scale", "generate_throughput", "sft_throughput", "grpo_overhead",
              "verifier_corpus")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="passed to every benchmark")
    group.add_argument("--smoke", action="store_true", help="passed to every benchmark")
    parser.add_argument("--threads", type=int, default=None, help="passed to every benchmark (default: theirs, 1)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only these, in this order; names: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, help="also write the JSON objects to this file (JSON lines)")
    parser.add_argument("--table", type=Path, help="also write the markdown table to this file")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per benchmark")
    return parser.parse_args(argv)


def run_one(name: str, flags: list[str], timeout: float) -> dict:
    """The benchmark's JSON object (its last stdout line), or an error object."""
    size = "smoke" if "--smoke" in flags else "quick" if "--quick" in flags else "full"
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *flags], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"benchmark": name, "size": size, "error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
        if proc.returncode == 0 and isinstance(result, dict) and result.get("benchmark") == name:
            return result
    except (IndexError, ValueError):
        pass
    tail = proc.stderr.strip().splitlines()[-12:]
    return {"benchmark": name, "size": size, "seconds": round(time.perf_counter() - start, 1),
            "error": f"exit status {proc.returncode}: " + " | ".join(tail)}


def markdown_table(results: list[dict]) -> str:
    """One row per benchmark: the headline figures, the ratio, the target, the load the machine was under; then the
    machine and what limits each benchmark."""
    rows = ["| benchmark | size | measured | ours | baseline | ratio | target | met | load (1 min) | s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['benchmark']} | {r['size']} | error: {r['error'][:80]} | | | | | no | | |")
            continue
        h = r["headline"]
        rows.append(f"| {r['benchmark']} | {r['size']} | {h['metric']} | {h['ours']:,} | {h['baseline']:,} | "
                    f"{r['ratio']:.2f}x | {r['target'].split(' (')[0]} | {'yes' if r['met'] else 'no'} | "
                    f"{r['machine'].get('load_avg_1m', '')} | {r['seconds']:.0f} |")
    machines = {json.dumps({k: v for k, v in r["machine"].items() if k != "load_avg_1m"}, sort_keys=True)
                for r in results if "machine" in r}
    notes = [f"machine: {m}" for m in sorted(machines)]
    limits = [f"- {r['benchmark']}: {r['limits']}" for r in results if "limits" in r]
    return "\n".join(rows + [""] + every_ratio(results) + [""] + notes + ["", "What limits each (from its profile):"]
                     + limits) + "\n"


def every_ratio(results: list[dict]) -> list[str]:
    """Each benchmark's every ratio with its baseline in words (`ratios` {"ratio_vs_NAME": x}, `baselines` {NAME:
    words}; a result without them: its one ratio against its `baseline`)."""
    lines = ["Every ratio against its baseline:"]
    for r in results:
        if "error" in r:
            continue
        baselines = r.get("baselines") or {"baseline": r.get("baseline", "")}
        for key, value in (r.get("ratios") or {"ratio_vs_baseline": r["ratio"]}).items():
            name = key.removeprefix("ratio_vs_")
            lines.append(f"- {r['benchmark']}: {value:.2f}x vs {name}: {baselines.get(name) or '(not described)'}")
    return lines


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    flags = ["--quick"] if args.quick else ["--smoke"] if args.smoke else []
    if args.threads:
        flags += ["--threads", str(args.threads)]
    results = []
    for name in args.only or BENCHMARKS:
        results.append(run_one(name, flags, args.timeout))
        print(json.dumps(results[-1]), flush=True)
    table = markdown_table(results)
    print(table, file=sys.stderr)
    if args.out:
        write_atomic(args.out, "".join(json.dumps(r) + "\n" for r in results))
    if args.table:
        write_atomic(args.table, table)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
