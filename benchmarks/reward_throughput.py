"""reward_throughput: completions/s through the accuracy reward (math_verify behind a deadline) and the rule-based
rewards, on realistic completions, with the per-call time bound exercised on pathological LaTeX.

Completions: R1-style `<think>...</think>` reasoning (lognormal length, median 1,500 characters) then an answer:
half integer problems (boxed, bare last number, thousands separators), half MATH-style LaTeX answers
(fractions, radicals, ordered pairs) written in an equivalent form 40% of the time (\\dfrac for \\frac, a/b,
\\sqrt{12} for 2\\sqrt{3}); 70% correct. Countdown completions (numbers, target, an expression) for `countdown`.

Ours: `rewards.build_reward(name)` called as GRPO calls it, in batches of 64 with the dataset columns as keyword
arguments; the verifier's (gold, answer) cache is cleared before the timed run and its worker started before it.
Baseline: math_verify called directly in-process on the same (non-pathological) completions, as open-r1's
accuracy reward does: `verify(parse(gold), parse(completion))` per completion. Both run on the integer half and
the LaTeX half separately, interleaved batch by batch (taking turns at going first, so both see the same load from
the machine's other jobs), best of `repeats` per half, each repeat with a fresh verifier worker. Headline ratio: accuracy completions/s over
both halves, ours / baseline (the brief sets no target: 0.95, i.e. the deadline machinery costs at most 5%); the
ratio per half and the agreement of the verdicts are reported too. Pathological answers
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


def math_completions(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
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


def interleaved(accuracy, texts: list[str], golds: list[str]) -> tuple[dict, dict]:
    """Ours and the baseline batch by batch, taking turns at going first, so that both see the same load from the
    machine's other jobs; ({side: scores}, {side: seconds})."""
    scores: dict = {"ours": [], "baseline": []}
    seconds = {"ours": 0.0, "baseline": 0.0}
    for i, b in enumerate(range(0, len(texts), BATCH)):
        batch, answers = texts[b:b + BATCH], golds[b:b + BATCH]
        for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
            start = time.perf_counter()
            if side == "ours":
                scores[side] += accuracy(batch, gold_answer=answers)
            else:
                scores[side] += direct_math_verify(batch, answers)
            seconds[side] += time.perf_counter() - start
    return scores, seconds


def pathological_calls(accuracy, count: int) -> list[dict]:
    """One accuracy call per pathological answer: its score and its wall time."""
    out = []
    for answer in PATHOLOGICAL[:count]:
        completion = f"<think>\nok\n</think>\nThe answer is $\\boxed{{{answer}}}$."
        start = time.perf_counter()
        score = accuracy([completion], gold_answer=["\\frac{3}{4}"])
        out.append({"answer": answer[:40], "score": score[0], "seconds": round(time.perf_counter() - start, 3)})
    return out


def fresh_verifier(accuracy) -> None:
    """What a fresh process has: no cached verdicts, and a worker whose gold-parse cache is empty (it caches parsed
    golds, so a second run over the same golds would be cheaper than the first). The new worker starts here, outside
    the timing."""
    from rewards import verify as answer_check

    if answer_check._worker is not None:
        answer_check._worker.close()
        answer_check._worker = None
    answer_check._cache.clear()
    accuracy(["\\boxed{\\frac{1}{2}}"], gold_answer=["0.5"])
    answer_check._cache.clear()


def accuracy_figures(size: dict, completions: list[str], golds: list[str], repeats: int) -> tuple[dict, object]:
    """Ours and the baseline, interleaved batch by batch, on the integer half and the LaTeX half separately,
    `repeats` times with a fresh verifier each; the best time of each side per half, their sums, and the verdict
    agreement."""
    import rewards

    accuracy = rewards.build_reward({"name": "accuracy", "timeout_s": size["timeout_s"]})
    halves = {"integer": (completions[0::2], golds[0::2]), "latex": (completions[1::2], golds[1::2])}
    best: dict = {"ours": {}, "baseline": {}}
    verdicts: dict = {"ours": {}, "baseline": {}}
    for _ in range(repeats):
        for half, (texts, answers) in halves.items():
            fresh_verifier(accuracy)
            scores, seconds = interleaved(accuracy, texts, answers)
            for side in best:
                verdicts[side][half] = scores[side]
                if half not in best[side] or seconds[side] < best[side][half]["seconds"]:
                    best[side][half] = {"completions_per_s": round(len(texts) / seconds[side], 1),
                                        "seconds": round(seconds[side], 3)}
    out = {}
    for side, per_half in best.items():
        total = sum(f["seconds"] for f in per_half.values())
        scores = [v for half in halves for v in verdicts[side][half]]
        out[side] = {"completions_per_s": round(len(completions) / total, 1), "seconds": round(total, 3),
                     **per_half, "mean_score": round(sum(scores) / len(scores), 4)}
    pairs = [(a, b) for half in halves for a, b in zip(verdicts["ours"][half], verdicts["baseline"][half])]
    out["agreement"] = round(sum(a == b for a, b in pairs) / len(pairs), 4)
    out["ratio_by_kind"] = {half: round(out["ours"][half]["completions_per_s"]
                                        / out["baseline"][half]["completions_per_s"], 3) for half in halves}
    return out, accuracy


def main(argv=None) -> dict:
    import rewards

    args = common.parse_args(__doc__, argv)
    common.set_threads(args.threads)  # no torch work here; set so that the recorded thread count is the one used
    started = time.perf_counter()
    size = SIZES[args.size]
    with common.stdout_to_stderr():
        completions, golds = math_completions(size["completions"])
        accuracy_out, accuracy = accuracy_figures(size, completions, golds, args.repeats or size["repeats"])
        rules = {name: throughput(rewards.build_reward(name), completions)[1] for name in RULE_REWARDS}
        cd, numbers, targets = countdown_completions(size["completions"])
        rules["countdown"] = throughput(rewards.build_reward("countdown"), cd, numbers=numbers, target=targets)[1]
        pathological = pathological_calls(accuracy, size["pathological"])
        fresh_verifier(accuracy)
        _, profile = common.cprofile(throughput, accuracy, completions[:size["profile"]], buckets=BUCKETS,
                                     gold_answer=golds[:size["profile"]])
    worst = max(p["seconds"] for p in pathological)
    bound = size["timeout_s"] + GRACE_S
    ratio = accuracy_out["ours"]["completions_per_s"] / accuracy_out["baseline"]["completions_per_s"]
    figures = {"accuracy": accuracy_out, "rules": rules, "pathological": pathological,
               "max_call_s": worst, "call_bound_s": bound, "timeout_s": size["timeout_s"],
               "completions": len(completions), "batch": BATCH}
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
