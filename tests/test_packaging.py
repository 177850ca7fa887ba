"""The wheel carries the data the code reads at run time: the released-dataset cards and the named benchmarks' files.

Built from a copy of the project (so the build leaves nothing in the checkout), installed into a folder of its own,
and imported from there by a fresh interpreter that runs outside the repository: what a user of `pip install
reasonforge` gets, not what the editable install of this checkout sees.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ["pipeline/data/cards/openr1-math-220k.md", "pipeline/data/cards/limo.md",
            "pipeline/data/benchmark_files/math500.jsonl", "pipeline/data/benchmark_files/gsm8k_test.jsonl",
            "pipeline/data/benchmark_files/aime24.jsonl", "pipeline/data/benchmark_files/amc23.jsonl",
            "pipeline/data/benchmark_files/README.md"]

INSTALLED_CHECK = textwrap.dedent("""
    import sys
    from pathlib import Path

    import pipeline
    from pipeline.data.adapters import list_released, load_released
    from pipeline.data.benchmarks import load_benchmark

    assert Path(pipeline.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), pipeline.__file__
    print("benchmarks", {name: len(load_benchmark(name)) for name in ("gsm8k", "math500", "aime24", "amc23")})
    print("released", [name for name, _ in list_released()])
    print("limo rows", len(load_released("limo", path=sys.argv[2])))
""")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("pipeline", "rewards"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    # setuptools' PEP 517 hook, as `pip wheel --no-deps --no-build-isolation` calls it, without pip's start-up (3 s
    # instead of 9 s here)
    build = f"from setuptools import build_meta; build_meta.build_wheel({str(work / 'dist')!r})"
    subprocess.run([sys.executable, "-c", build], cwd=source, check=True, capture_output=True, timeout=300)
    (found,) = (work / "dist").glob("reasonforge-*.whl")
    return found


def test_wheel_holds_the_cards_and_benchmark_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in PACKAGED if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert len([n for n in names if n.startswith("pipeline/data/cards/") and n.endswith(".md")]) == 6


def test_installed_wheel_loads_benchmarks_and_released_cards(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"  # no pipeline/ here or above: the import must come from the install
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    env.pop("REASONFORGE_SHARED_DATA", None)
    limo = ROOT / "tests" / "fixtures" / "released" / "limo.jsonl"
    out = subprocess.run([sys.executable, "-c", INSTALLED_CHECK, str(target), str(limo)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "benchmarks {'gsm8k': 1319, 'math500': 500, 'aime24': 30, 'amc23': 40}" in out.stdout
    assert ("released ['bespoke-stratos-17k', 'gsm8k-rationales', 'limo', 'openr1-math-220k', 'openthoughts-114k', "
            "'s1k-1.1']") in out.stdout
    assert "limo rows 2" in out.stdout
