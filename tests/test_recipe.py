"""Recipe loading: overrides and every validation error as one line with exit status 2."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tests.stage_fixtures  # noqa: F401
from pipeline.cli import main
from pipeline.run.recipe import RecipeError, load_recipe

GOOD = """
name: t
seed: 3
stages:
  first: {kind: echo, text: a}
  second: {kind: echo, data: {from: first}}
"""


def write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_loads_typed_stages_and_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.seed == 3 and recipe.run_dir == Path("runs/t")
    assert [s.name for s in recipe.stages] == ["first", "second"]
    assert recipe.stages[1].depends_on == ["first"]
    assert recipe.stages[1].config.data.stage == "first"


def test_overrides_set_nested_values_with_yaml_types(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD), ["stages.first.text=b", "seed=1", "stages.first.sleep_s=1e-3"])
    assert recipe.seed == 1
    assert recipe.stages[0].config.text == "b"
    assert recipe.stages[0].config.sleep_s == pytest.approx(1e-3)


BAD_CASES = [
    ("unknown key", "name: t\nstages:\n  first: {kind: echo, txet: a}\n", "stages.first.txet: unknown key",
     "did you mean 'text'"),
    ("wrong type", "name: t\nstages:\n  first: {kind: echo, sleep_s: fast}\n", "stages.first.sleep_s: expected float",
     ""),
    ("missing required", "seed: 0\nstages:\n  first: {kind: echo}\n", "name: missing required field", "add name:"),
    ("unknown kind", "name: t\nstages:\n  first: {kind: nope}\n", "unknown stage kind 'nope'", "echo"),
    ("from no earlier", "name: t\nstages:\n  first: {kind: echo, data: {from: later}}\n  later: {kind: echo}\n",
     "from: 'later' names no earlier stage", ""),
    ("top-level typo", "name: t\nsede: 1\nstages:\n  first: {kind: echo}\n", "sede: unknown key", "did you mean 'seed'"),
    ("bad override", None, "stages.first.sleep_s: expected float", ""),
]


@pytest.mark.parametrize("label,text,expected,fix", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_validation_errors_are_one_line_exit_2(tmp_path, capsys, label, text, expected, fix):
    path = write(tmp_path, text if text is not None else GOOD)
    argv = ["plan", str(path)] + (["stages.first.sleep_s=slow"] if text is None else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and expected in err and fix in err


def test_missing_required_stage_field(tmp_path):
    path = write(tmp_path, "name: t\nstages:\n  p: {kind: tasks}\n")
    with pytest.raises(RecipeError, match=r"stages\.p\.task: missing required field"):
        load_recipe(path)


def test_trainer_keys_checked_against_installed_trl(tmp_path):
    import pipeline.stages  # noqa: F401
    from pipeline.run.registry import STAGES

    sft_like = [e.name for e in STAGES.entries() if getattr(e.config, "trainer_config", None)]
    if not sft_like:
        pytest.skip("no stage kind with a trainer: yet")
    kind = sft_like[0]
    cls = STAGES.get(kind).config
    import dataclasses

    required = {f.name: f for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    body = {k: ("x/y" if k != "data" else {"path": "x.jsonl"}) for k in required}
    body.update(kind=kind, trainer={"max_seq_length": 128})
    import yaml

    path = write(tmp_path, yaml.safe_dump({"name": "t", "stages": {"s": body}}))
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    assert "trainer.max_seq_length" in str(e.value) and "TRL" in str(e.value) and "max_length" in str(e.value)


def test_cli_exit_code_in_a_real_process(tmp_path):
    path = write(tmp_path, "name: t\nstages:\n  first: {kind: nope}\n")
    out = subprocess.run([sys.executable, "-m", "pipeline", "validate", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown stage kind 'nope'" in out.stderr
    assert "Traceback" not in out.stderr


def test_every_shipped_recipe_validates():
    recipes = sorted(Path("recipes").glob("*.yaml"))
    assert recipes, "recipes/ has no recipe"
    for path in recipes:
        load_recipe(path)
