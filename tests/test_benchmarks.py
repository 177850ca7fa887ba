"""benchmarks/: every script runs at its smallest size and prints one JSON object with the agreed keys and figures
that hang together; run_all collects the objects, reports failures and writes the table. Not timed tests: the
figures themselves are what `make bench` is for."""

import json
import math
import sys
import textwrap

import pytest

from benchmarks import (
    common,
    curate_scale,
    generate_throughput,
    grpo_overhead,
    reward_throughput,
    run_all,
    sft_throughput,
    verifier_corpus,
)


def run_smoke(module, capsys) -> dict:
    result = module.main(["--smoke"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, "a benchmark prints exactly one line on stdout"
    assert json.loads(lines[0]) == json.loads(json.dumps(result))
    for key in common.RESULT_KEYS:
        assert key in result, key
    assert result["size"] == "smoke" and isinstance(result["met"], bool)
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0
    assert {"cpu_count", "torch_threads", "torch", "device"} <= set(result["machine"])
    assert result["machine"]["torch_threads"] == 1
    assert result["limits"] and result["profile"]
    headline = result["headline"]
    assert headline["ours"] > 0 and headline["baseline"] > 0
    assert result["ratio"] in result["ratios"].values(), "the headline ratio is one of the named ratios"
    for key in result["ratios"]:  # every ratio names the baseline it was measured against, in words
        assert key.startswith("ratio_vs_") and result["baselines"][key.removeprefix("ratio_vs_")]
    return result


def top_functions(profile: dict) -> list[str]:
    assert profile["tool"] == "cProfile" and profile["top"], "the profile must record its top entries"
    return [entry["function"] for entry in profile["top"]]


def test_sft_throughput_smoke(capsys):
    result = run_smoke(sft_throughput, capsys)
    figures = result["figures"]
    ours, default, tuned = figures["ours"], figures["trl_default"], figures["trl_tuned"]
    assert ours["real_tokens"] == default["real_tokens"] == tuned["real_tokens"] > 0  # one epoch over the same rows
    assert ours["steps"] == default["steps"] == tuned["steps"] == 4
    assert all(math.isfinite(side["heldout_loss"]) for side in (ours, default, tuned))
    assert set(result["ratios"]) == {"ratio_vs_trl_tuned", "ratio_vs_trl_default"}
    assert result["ratio"] == result["ratios"]["ratio_vs_trl_tuned"]  # the headline: the strongest baseline
    assert result["ratio"] == pytest.approx(ours["tokens_per_cpu_s"] / tuned["tokens_per_cpu_s"], rel=1e-2)
    assert result["ratios"]["ratio_vs_trl_default"] == pytest.approx(
        ours["tokens_per_cpu_s"] / default["tokens_per_cpu_s"], rel=1e-2)
    assert 0 < ours["train_cpu_s"] and figures["wall_ratio_vs_trl_tuned"] > 0
    assert "gradient_checkpointing=False" in result["baselines"]["trl_tuned"]
    assert "group_by_length" in result["baselines"]["trl_tuned"] and "assistant_only_loss=True" in result["baselines"][
        "trl_tuned"]
    for side in ("ours", "trl_default", "trl_tuned"):
        assert top_functions(result["profile"][side])


def test_generate_throughput_smoke(capsys):
    result = run_smoke(generate_throughput, capsys)
    ours, base = result["figures"]["ours"], result["figures"]["baseline"]
    assert ours["tokens"] > 0 and base["tokens"] > 0
    assert 0 < ours["first_shard_s"] <= ours["end_to_end_s"] and 0 < base["first_batch_s"] <= base["end_to_end_s"]
    top_functions(result["profile"])


def test_curate_scale_smoke(capsys):
    result = run_smoke(curate_scale, capsys)
    figures = result["figures"]
    compare = figures["decontamination"]
    assert compare["same_rows_flagged"] is True
    agree, openr1 = figures["agreement"], figures["openr1"]
    assert agree["only_baseline"] == 0, agree["only_baseline_examples"]  # we catch every row open-r1 catches
    assert agree["rows_flagged_by_both"] == openr1["loop"]["flagged"] == openr1["map"]["flagged"] > 0
    assert agree["rows_flagged_by_both"] + agree["only_ours"] == compare["rows_flagged"]
    assert set(result["ratios"]) == {"ratio_vs_openr1_map", "ratio_vs_openr1_loop"}
    assert result["ratio"] == min(result["ratios"].values())  # the headline: against the faster open-r1 timing
    assert "Dataset.map" in result["baselines"]["openr1_map"]
    assert compare["planted"] > 0 and compare["planted_missed_long"] == 0
    assert compare["planted_flagged"] == compare["planted"] - len(compare["planted_missed"])
    for step in ("verify", "dedup", "decontaminate", "decontaminate_reference"):
        assert figures["steps"][step]["rows"] == figures["data"]["rows"] and figures["steps"][step]["rows_per_s"] > 0
        top_functions(result["profile"][step])
    assert figures["steps"]["verify"]["dropped"], "wrong and broken answers must be dropped"


def test_grpo_overhead_smoke(capsys):
    result = run_smoke(grpo_overhead, capsys)
    figures = result["figures"]
    size = grpo_overhead.SIZES["smoke"]
    for side in ("ours", "baseline"):
        assert figures[side]["steps"] == size["steps"]  # warm-up and the last step left out
        assert figures[side]["startup_s"] > 0
    assert 0 <= result["profile"]["own_code_share"] < 1


def test_verifier_corpus_smoke(capsys):
    result = run_smoke(verifier_corpus, capsys)
    figures = result["figures"]
    assert result["baseline"].startswith("math_verify.verify(parse(gold), parse(whole_completion))")
    for side in ("ours", "baseline"):
        rates = figures[side]
        assert rates["correct"] + rates["incorrect"] == figures["completions"] > 0
        assert rates["correct"] > 0 and rates["incorrect"] > 0  # the sample holds both labels
        assert rates["false_positives"] == sum(rates["fp_by_kind"].values())
        assert rates["false_negatives"] == sum(rates["fn_by_kind"].values())
        assert rates["fp_rate"] == pytest.approx(rates["false_positives"] / rates["incorrect"], abs=1e-4)
    assert figures["ours"]["false_positives"] == 0 and figures["ours"]["false_negatives"] == 0
    assert result["ratio"] == pytest.approx(
        figures["ours"]["completions_per_s"] / figures["baseline"]["completions_per_s"], rel=1e-2)
    top_functions(result["profile"])


def test_reward_throughput_smoke(capsys):
    result = run_smoke(reward_throughput, capsys)
    figures = result["figures"]
    assert figures["max_call_s"] <= figures["call_bound_s"]
    assert all(call["score"] == 0.0 for call in figures["pathological"])
    assert set(figures["rules"]) == {*reward_throughput.RULE_REWARDS, "countdown"}
    assert figures["accuracy"]["ours"]["mean_score"] == pytest.approx(0.7, abs=0.15)  # 70% correct by design
    top_functions(result["profile"])


FAKE_GOOD = """
import json, sys
print("noise from a library")
print(json.dumps({"benchmark": "good", "size": "smoke" if "--smoke" in sys.argv else "full", "ratio": 2.0,
                  "headline": {"metric": "x/s", "ours": 2.0, "baseline": 1.0}, "target": "ratio >= 1.5 (x)",
                  "met": True, "seconds": 0.1, "machine": {"cpu_count": 2}, "limits": "the fake",
                  "argv": sys.argv[1:]}))
"""
FAKE_BAD = "import sys\nprint('it broke here', file=sys.stderr)\nsys.exit(3)\n"


def test_run_all_collects_results_reports_failures_and_writes_the_table(tmp_path, monkeypatch, capsys):
    (tmp_path / "good.py").write_text(textwrap.dedent(FAKE_GOOD))
    (tmp_path / "bad.py").write_text(FAKE_BAD)
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "BENCHMARKS", ("good", "bad"))
    status = run_all.main(["--smoke", "--threads", "1", "--out", str(tmp_path / "r.jsonl"),
                           "--table", str(tmp_path / "t.md")])
    assert status == 1  # one benchmark failed
    printed = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["benchmark"] for r in printed] == ["good", "bad"]
    assert printed[0]["argv"] == ["--smoke", "--threads", "1"] and printed[0]["size"] == "smoke"
    assert "exit status 3" in printed[1]["error"] and "it broke here" in printed[1]["error"]
    saved = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert saved == printed
    table = (tmp_path / "t.md").read_text()
    assert "| good | smoke | x/s | 2.0 | 1.0 | 2.00x | ratio >= 1.5 | yes |  | 0 |" in table
    assert "| bad | smoke | error:" in table and "- good: the fake" in table
    assert "- good: 2.00x vs baseline: (not described)" in table  # a result without `ratios`: its one ratio


def test_the_table_lists_every_ratio_with_its_baseline_in_words():
    result = {"benchmark": "b", "ratio": 1.5, "ratios": {"ratio_vs_tuned": 1.5, "ratio_vs_default": 3.0},
              "baselines": {"tuned": "X tuned like ours", "default": "X as shipped"}}
    assert run_all.every_ratio([result, {"benchmark": "c", "error": "boom"}]) == [
        "Every ratio against its baseline:", "- b: 1.50x vs tuned: X tuned like ours",
        "- b: 3.00x vs default: X as shipped"]


def test_run_all_rejects_an_unknown_benchmark(capsys):
    with pytest.raises(SystemExit):
        run_all.main(["--only", "sft_thruput"])
    assert "invalid choice" in capsys.readouterr().err


def test_scripts_run_as_files_from_any_folder(tmp_path):
    """`python benchmarks/x.py` puts benchmarks/ first on sys.path; the scripts must still import their package."""
    import subprocess

    for name in ("reward_throughput", "run_all"):
        script = common.REPO / "benchmarks" / f"{name}.py"
        proc = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "--quick" in proc.stdout and "--smoke" in proc.stdout
