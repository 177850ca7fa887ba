"""Every bad recipe is answered before any work: one line `file: key.path: problem. Fix: ...`, exit status 2.

Each case below was accepted (exit 0, then a traceback mid-run), crashed with a traceback, hung, or gave a vague
message before these checks; the recipes it runs against are written to tmp_path, with the data they name.
"""

import subprocess
import sys
import textwrap
import time

import pytest

from pipeline.cli import main

# @RUN@, @TRACES@ (a JSONL file) and @TEXT@ (a .txt file) are filled in with paths under tmp_path
HEADER = "name: t\nrun_dir: @RUN@\nstages:\n  p: {kind: tasks, task: arithmetic, splits: {train: 8}}\n"
# the billion laughs: 9 levels of 9 aliases each, 10^9 strings once expanded, in about 500 bytes, where the loader
# accepts any value (TRL's report_to takes a list); walking it for stage references ran for minutes
LAUGHS = "[&a [lol, lol, lol, lol, lol, lol, lol, lol, lol], " + ", ".join(
    f"&{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")) + "]"


def sft(model="{init: tiny}", data="@TRACES@", more=""):
    return HEADER + f"  sft: {{kind: sft, model: {model}, data: {data}{more}}}\n"


# (id, recipe text or bytes, override words, what the one line must say)
BAD = [
    ("negative limit", sft(data="{path: @TRACES@, limit: -1}"), [],
     "stages.sft.data.limit: expected a whole number >= 0, got -1"),
    ("missing data file", sft(data="./nope/traces.jsonl"), [], "stages.sft.data: './nope/traces.jsonl': no such file"),
    ("missing model folder", sft(model="./models/nope"), [], "stages.sft.model: './models/nope': no such model"),
    ("duplicate stage key", sft() + "  sft: {kind: sft, model: {init: tiny}, data: @TRACES@}\n", [],
     "stages.sft: duplicate key (lines 5 and 6"),
    ("duplicate top-level key", "seed: 1\nseed: 2\n" + sft(), [], "seed: duplicate key (lines 1 and 2"),
    ("zero torch threads", "torch_threads: 0\n" + sft(), [], "torch_threads: 0 threads. Fix: give 1 or more"),
    ("negative price", "price_per_device_hour: -2\n" + sft(), [], "price_per_device_hour: must be >= 0, got -2.0"),
    ("negative max_steps", sft(more=", trainer: {max_steps: -5}"), [],
     "stages.sft.trainer.max_steps: -5 is out of range. Fix: give a number of steps >= 1, or -1"),
    ("batch size 0", sft(more=", trainer: {per_device_train_batch_size: 0}"), [],
     "stages.sft.trainer.per_device_train_batch_size: 0 is out of range"),
    ("unknown released name", sft(data="{released: limo2}"), [],
     "stages.sft.data.released: unknown released dataset 'limo2'. Fix: did you mean 'limo'?"),
    ("learning_rate: fast", sft(more=", trainer: {learning_rate: fast}"), [],
     "stages.sft.trainer.learning_rate: expected a number, got 'fast'"),
    ("unsupported extension", sft(data="@TEXT@"), [], "stages.sft.data: '@TEXT@': cannot read a '.txt' file"),
    ("tiny-model key typo", sft(model="{init: tiny, layer: 2}"), [],
     "stages.sft.model.layer: unknown tiny-model parameter. Fix: did you mean 'layers'?"),
    ("typo inside data", sft(data="{path: @TRACES@, splitt: train}"), [],
     "stages.sft.data.splitt: unknown key. Fix: did you mean 'split'?"),
    ("keep without released", sft(data="{path: @TRACES@, keep: all}"), [],
     "stages.sft.data.keep: keep applies to released datasets only"),
    ("binary file", b"name: t\x00\x01\x02stages:\n", [], ": (file): is a binary file, not YAML text"),
    ("not UTF-8", b"name: t\nstages: {p: {kind: tasks, task: caf\xe9}}\n", [], ": line 2: byte 43 is not UTF-8 text"),
    ("folder named x.yaml", None, [], ": (file): is a folder, not a recipe file"),
    ("override value not YAML", sft(), ["seed=[1,"], "seed: the override value '[1,' is not YAML"),
    ("override adds a stage", sft(), ["stages.nope.x=1"],
     "stages.nope: no such stage (an override cannot add one). Fix: use one of: p, sft"),
    ("alias bomb", sft(more=f", trainer: {{report_to: {LAUGHS}}}"), [],
     "stages.sft.trainer.report_to[5]: expands to more than 100,000 values through aliases"),
]


def _write(tmp_path, text):
    traces = tmp_path / "traces.jsonl"
    traces.write_text('{"problem": "1+1?", "response": "<think>\\nadd\\n</think>\\n2", "gold_answer": "2"}\n')
    (tmp_path / "traces.txt").write_text("1+1 = 2\n")
    path = tmp_path / "x.yaml"
    if text is None:
        path.mkdir()
    elif isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text.replace("@TRACES@", str(traces)).replace("@TEXT@", str(tmp_path / "traces.txt"))
                        .replace("@RUN@", str(tmp_path / "run")))
    return path


# `validate` takes no overrides: the override cases go through `run` only
RUNS = [(command, *case) for case in BAD for command in (("run",) if case[2] else ("validate", "run"))]


@pytest.mark.parametrize("command,label,text,overrides,expected", RUNS, ids=[f"{c[1]}-{c[0]}" for c in RUNS])
def test_bad_recipe_is_one_line_exit_2_before_any_work(tmp_path, capsys, command, label, text, overrides, expected):
    path = _write(tmp_path, text)
    start = time.perf_counter()
    assert main([command, str(path), *overrides]) == 2
    assert time.perf_counter() - start < 10  # the alias bomb took more than 60 s before
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {path}: ")
    assert expected.replace("@TEXT@", str(tmp_path / "traces.txt")) in err, err
    assert not (tmp_path / "run").exists()  # nothing ran, not even the first stage


GOOD = [
    ("bare reward name", "  rl: {kind: grpo, model: {init: tiny}, data: {from: p}, rewards: [accuracy]}\n"),
    ("released with a local copy", "  s: {kind: sft, model: {init: tiny}, data: {released: limo, path: @TRACES@}}\n"),
    ("released, keep all", "  s: {kind: sft, model: {init: tiny}, data: {released: openr1-math-220k, keep: all}}\n"),
    ("hub ids are not checked on disk", "  s: {kind: sft, model: Qwen/Qwen2.5-0.5B, data: open-r1/OpenR1-Math-220k}\n"),
    ("a shared alias", "  s: &s {kind: sft, model: {init: tiny}, data: @TRACES@}\n  s2: *s\n"),
]


@pytest.mark.parametrize("label,stage", GOOD, ids=[case[0] for case in GOOD])
def test_good_recipes_validate(tmp_path, capsys, label, stage):
    path = _write(tmp_path, HEADER + stage)
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_bare_reward_name_becomes_a_spec(tmp_path):
    from pipeline.run.recipe import load_recipe

    path = _write(tmp_path, GOOD[0][1].join([HEADER, ""]))
    assert load_recipe(path).stage("rl").config.rewards == [{"name": "accuracy"}]


def test_released_ref_keeps_its_path_and_keep(tmp_path):
    from pipeline.run.recipe import load_recipe

    path = _write(tmp_path, HEADER + GOOD[1][1] + GOOD[2][1].replace("s:", "s2:"))
    recipe = load_recipe(path)
    assert recipe.stage("s").config.data.path == str(tmp_path / "traces.jsonl")
    assert recipe.stage("s2").config.data.keep == "all"


def test_real_process_prints_one_line_and_exits_2(tmp_path):
    path = _write(tmp_path, textwrap.dedent(sft(data="{path: @TRACES@, limit: -1}")))
    out = subprocess.run([sys.executable, "-m", "pipeline", "run", str(path)], capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "stages.sft.data.limit" in out.stderr
    assert "Traceback" not in out.stderr
