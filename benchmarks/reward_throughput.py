"""reward_throughput: completions/s through the accuracy reward (math_verify behind a deadline) and the rule-based
rewards, on realistic completions, with the per-call time bound exercised on pathological LaTeX.

Completions: R1-style `<think>...</think>` reasoning (lognormal length, median 1,500 characters) then an answer:
half integer problems (boxed, bare last number, thousands separators), half MATH-style LaTeX answers
(fractions, radicals, ordered pairs) written in an equivalent form 40% of the time (\\dfrac for \\frac, a/b,
\\sqrt{12} for 2\\sqrt{3}); 70% correct. Countdown completions (numbers, target, an expression) for `countdown`.

Ours: `rewards.build_reward(name)` called as GRPO calls it, in batches of 64 with the dataset columns as keyword
arguments. Baseline: math_verify called directly in-process on the same (non-pathological) completions, as
open-r1's accuracy reward does: `verify(parse(gold), parse(completion))` per completion. Both run on the integer
half and the LaTeX half separately, interleaved batch by batch (taking turns at going first, so both see the same
load from the machine's other jobs), over `repeats` different completion sets, both warmed up first (see
accuracy_figures). Headline ratio: accuracy completions/s over both halves, ours / baseline (the brief sets no
target: 0.95, i.e. the deadline machinery may cost at most 5%); the ratio per half and the agreement of the verdicts
are reported too. Pathological answers
(2^{2^{30}}, 10^{10^{10}}, 9^{9^{9^{9}}}, (1000000)!, deep nesting, towers of x): one call each, per-call seconds;
the bound is timeout_s + 1 s (the grace before the worker is killed).
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common, curate_data

TARGET = 0.95  # the brief sets none: the deadline (a worker process) may cost at most 5% against math_verify
GRACE_S = 1.0  # rewards.verify kills a worker that has not answered timeout_s + 1 s after the request
BATCH = 64
RULE_REWARDS = ("think_format", "tag_count", "repetition_penalty", "language_consistency", "soft_overlong")
PATHOLOGICAL = ("2^{2^{30}}", "10^{10^{10}}", "9^{9^{9^{9}}}", "(1000000)!", "x^{x^{x^{x^{x^{x}}}}}",
                "(" * 14 + "1" + ")" * 14, "\\frac{1}{" * 12 + "2" + "}" * 12, "\\sqrt{2}" * 150)
SIZES = {
    "full": {"completions": 4000, "profile": 800, "timeout_s": 2.0, "pathological": len(PATHOLOGICAL),
             "repeats": 2},
    "quick": {"completions": 600, "profile": 200, "timeout_s": 2.0, "pathological": 4, "repeats": 2},
    "smoke": {"completions": 64, "profile": 32, "timeout_s": 0.5, "pathological": 2, "repeats": 1},
}
BUCKETS = {
    "math_verify worker (IPC and wait)": ("'poll' of 'select.poll'", "posix.read", "FileIO", "_read_line",
                                          "request", "json/"),
    "answer extraction": ("rewards/text.py", "rewards/accuracy.py", "'partition'", "'rfind'", "'find'"),
    "plain-number fast path and cache": ("rewards/verify.py", "fractions.py", "re.Pattern"),
}


def equivalent_form(gold: str, rng: random.Random) -> str:
    """The same value written another way, as models do."""
    if gold.startswith("\\frac") and rng.random() < 0.5:
        return gold.replace("\\frac", "\\dfrac", 1)
    if gold.startswith("\\frac"):
        numerator, denominator = gold[6:-1].split("}{")
        return f"{numerator}/{denominator}"
    if "\\sqrt" in gold:
        outer, inner = gold.split("\\sqrt{")
        return f"\\sqrt{{{int(outer or 1) ** 2 * int(inner[:-1])}}}"
    if gold.startswith("("):
        return gold.replace(",", ", ")
    return gold


def integer_answer(rng: random.Random, correct: bool) -> tuple[str, str]:
    """(gold, answer text) for an integer problem."""
    gold = rng.randint(-99, 99999)
    value = gold if correct else gold + rng.randint(1, 40)
    style = rng.randrange(3)
    if style == 0:
        return str(gold), f"The answer is $\\boxed{{{value}}}$."
    if style == 1:
        return str(gold), f"So she has {value} left."
    return str(gold), f"The total is $\\boxed{{{value:,}}}$ dollars."


def latex_answer(rng: random.Random, correct: bool) -> tuple[str, str]:
    """(gold, answer text) for a MATH-style problem with a LaTeX answer."""
    gold, latex = "", False
    while not latex:
        _, gold, latex = curate_data.math_problem(rng)
    if not correct:
        return gold, f"The answer is $\\boxed{{{curate_data.wrong_answer(gold, True, rng)}}}$."
    form = equivalent_form(gold, rng) if rng.random() < 0.4 else gold
    return gold, f"Therefore the answer is $\\boxed{{{form}}}$."


def math_completions(count: int, seed: int) -> tuple[list[str], list[str]]:
    """(completions, gold answers): half integer, half LaTeX, 70% correct, R1 layout."""
    rng = random.Random(seed)
    pool = curate_data.sentence_pool(rng, 1500)
    completions, golds = [], []
    for i in range(count):
        correct = rng.random() < 0.7
        gold, answer = integer_answer(rng, correct) if i % 2 == 0 else latex_answer(rng, correct)
        chars = int(rng.lognormvariate(math.log(1500), 0.6))
        completions.append(f"<think>\n{' '.join(rng.choices(pool, k=max(1, chars // 60)))}\n</think>\n{answer}")
        golds.append(gold)
    return completions, golds


def countdown_completions(count: int, seed: int = 1) -> tuple[list[str], list[list[int]], list[int]]:
    rng = random.Random(seed)
    completions, numbers, targets = [], [], []
    for _ in range(count):
        a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(1, 99)
        target = a * b - c if rng.random() < 0.7 else a * b + c + 1
        completions.append(f"<think>\nTry {a} * {b} = {a * b}, minus {c}.\n</think>\n<answer>{a} * {b} - {c}</answer>")
        numbers.append([a, b, c])
        targets.append(target)
    return completions, numbers, targets


def throughput(fn, completions: list, **columns) -> tuple[list, dict]:
    """(scores, {completions_per_s, seconds}) calling fn on batches of BATCH, as GRPO does."""
    scores, start = [], time.perf_counter()
    for b in range(0, len(completions), BATCH):
        scores += fn(completions[b:b + BATCH], **{k: v[b:b + BATCH] for k, v in columns.items()})
    seconds = time.perf_counter() - start
    return scores, {"completions_per_s": round(len(completions) / seconds, 1), "seconds": round(seconds, 3)}


def direct_math_verify(completions: list[str], golds: list[str]) -> list[float]:
    """The baseline: math_verify parse + verify per completion, in this process, with its own default timeouts."""
    from math_verify import parse, verify

    return [float(verify(parse(f"${gold}$"), parse(completion))) for completion, gold in zip(completions, golds)]


def worker_cpu_s() -> float:
    """CPU seconds used so far by the math_verify worker process (0 when there is none or /proc is missing)."""
    import os

    from rewards import verify as answer_check

    worker = answer_check._worker
    try:
        fields = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (AttributeError, OSError, ValueError, IndexError):
        return 0.0


def interleaved(accuracy, texts: list[str], golds: list[str]) -> tuple[dict, dict]:
    """Ours and the baseline batch by batch, taking turns at going first, so that both see the same load from the
    machine's other jobs; ({side: scores}, {side: {wall, cpu}}), where ours' cpu includes its worker process's."""
    scores: dict = {"ours": [], "baseline": []}
    took = {"ours": {"wall": 0.0, "cpu": 0.0}, "baseline": {"wall": 0.0, "cpu": 0.0}}
    for i, b in enumerate(range(0, len(texts), BATCH)):
        batch, answers = texts[b:b + BATCH], golds[b:b + BATCH]
        for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
            wall, cpu, worker = time.perf_counter(), time.process_time(), worker_cpu_s()
            if side == "ours":
                scores[side] += accuracy(batch, gold_answer=answers)
            else:
                scores[side] += direct_math_verify(batch, answers)
            took[side]["wall"] += time.perf_counter() - wall
            took[side]["cpu"] += time.process_time() - cpu + max(0.0, worker_cpu_s() - worker)
    return scores, took


def pathological_calls(accuracy, count: int) -> list[dict]:
    """One accuracy call per pathological answer: its score and its wall time."""
    out = []
    for answer in PATHOLOGICAL[:count]:
        completion = f"<think>\nok\n</think>\nThe answer is $\\boxed{{{answer}}}$."
        start = time.perf_counter()
        score = accuracy([completion], gold_answer=["\\frac{3}{4}"])
        out.append({"answer": answer[:40], "score": score[0], "seconds": round(time.perf_counter() - start, 3)})
    return out


def accuracy_figures(size: dict, repeats: int) -> tuple[dict, object]:
    """Ours and the baseline, interleaved batch by batch, on the integer half and the LaTeX half of `repeats`
    different completion sets; per side and half, the total seconds, and the verdict agreement.

    Both sides are warm before the timing (one pass over a separate set: math_verify's and sympy's caches in this
    process, the worker process started and its caches filled alike), and no completion set is seen twice: the
    worker caches parsed gold answers, so a second pass over the same golds would flatter ours."""
    import rewards

    accuracy = rewards.build_reward({"name": "accuracy", "timeout_s": size["timeout_s"]})
    interleaved(accuracy, *math_completions(BATCH * 2, seed=1000))
    took: dict = {side: {half: {"wall": 0.0, "cpu": 0.0} for half in ("integer", "latex")}
                  for side in ("ours", "baseline")}
    verdicts: dict = {"ours": [], "baseline": []}
    for r in range(repeats):
        completions, golds = math_completions(size["completions"], seed=r)
        for half, start in (("integer", 0), ("latex", 1)):
            scores, times = interleaved(accuracy, completions[start::2], golds[start::2])
            for side, per_half in took.items():
                for key in ("wall", "cpu"):
                    per_half[half][key] += times[side][key]
                verdicts[side] += scores[side]
    count = size["completions"] * repeats
    out = {}
    for side, per_half in took.items():
        total = sum(t["wall"] for t in per_half.values())
        out[side] = {"completions_per_s": round(count / total, 1), "seconds": round(total, 3),
                     **{half: {"completions_per_s": round(count / 2 / t["wall"], 1), "seconds": round(t["wall"], 3),
                               "cpu_s": round(t["cpu"], 3), "waiting_s": round(max(0.0, t["wall"] - t["cpu"]), 3)}
                        for half, t in per_half.items()},
                     "mean_score": round(sum(verdicts[side]) / count, 4)}
    out["agreement"] = round(sum(a == b for a, b in zip(verdicts["ours"], verdicts["baseline"])) / count, 4)
    out["ratio_by_kind"] = {half: round(took["baseline"][half]["wall"] / took["ours"][half]["wall"], 3)
                            for half in ("integer", "latex")}
    out["latex_cpu_ratio"] = round(took["baseline"]["latex"]["cpu"] / took["ours"]["latex"]["cpu"], 3)
    return out, accuracy


def main(argv=None) -> dict:
    import rewards

    args, size, started = common.start(__doc__, argv, SIZES)
    with common.stdout_to_stderr():
        accuracy_out, accuracy = accuracy_figures(size, args.repeats or size["repeats"])
        completions, _ = math_completions(size["completions"], seed=0)
        rules = {name: throughput(rewards.build_reward(name), completions)[1] for name in RULE_REWARDS}
        cd, numbers, targets = countdown_completions(size["completions"])
        rules["countdown"] = throughput(rewards.build_reward("countdown"), cd, numbers=numbers, target=targets)[1]
        pathological = pathological_calls(accuracy, size["pathological"])
        fresh, fresh_golds = math_completions(size["profile"], seed=2000)  # not seen before: no cached verdicts
        _, profile = common.cprofile(throughput, accuracy, fresh, buckets=BUCKETS, gold_answer=fresh_golds)
    worst = max(p["seconds"] for p in pathological)
    bound = size["timeout_s"] + GRACE_S
    ratio = accuracy_out["ours"]["completions_per_s"] / accuracy_out["baseline"]["completions_per_s"]
    figures = {"accuracy": accuracy_out, "rules": rules, "pathological": pathological,
               "max_call_s": worst, "call_bound_s": bound, "timeout_s": size["timeout_s"],
               "completions": size["completions"], "repeats": args.repeats or size["repeats"], "batch": BATCH}
    limits = (f"accuracy: {common.describe_buckets(profile, 3)} (cProfile of {size['profile']} completions): "
              f"LaTeX answers wait on math_verify (sympy) in the worker, integers take the in-process fast path; "
              f"slowest rule reward: {min(rules, key=lambda k: rules[k]['completions_per_s'])}")
    return common.finish("reward_throughput", args, started, figures=figures, ratio=ratio,
                         headline=("accuracy completions/s", accuracy_out["ours"]["completions_per_s"],
                                   accuracy_out["baseline"]["completions_per_s"]),
                         target=f"ratio >= {TARGET} (accuracy completions/s, ours / direct math_verify) and every "
                                f"call within timeout_s + {GRACE_S:.0f} s", met=ratio >= TARGET and worst <= bound,
                         baseline="math_verify.verify(parse(gold), parse(completion)) per completion, in-process, "
                                  "non-pathological completions only",
                         limits=limits, profile=profile)


if __name__ == "__main__":
    main()
