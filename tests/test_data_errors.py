"""Bad data is answered in one line naming the file, the line or column, and the fix, with exit status 2.

Before: a malformed JSONL line, an empty JSONL (a bare StopIteration) and a truncated parquet file gave 48-101 line
tracebacks with exit 1; a curate over rows without the columns its steps read succeeded with 0 rows.
"""

import json
import subprocess
import sys

import datasets
import pytest

from pipeline.cli import main
from pipeline.data.errors import DataError
from pipeline.data.sources import load_rows_or_dataset

THINK = "<think>\nAdd the two numbers, then check the sum.\n</think>\n\\boxed{4}"
GOOD_ROW = {"id": "a", "problem": "What is 2 plus 2?", "response": THINK, "thinking": "Add.", "answer": "\\boxed{4}",
            "gold_answer": "4", "finish_reason": "stop"}


def _malformed(path):
    path.write_text(json.dumps(GOOD_ROW) + "\n" + json.dumps(GOOD_ROW)[:-1] + "\n" + json.dumps(GOOD_ROW) + "\n")


def _empty(path):
    path.write_text("")


def _truncated(path):
    datasets.Dataset.from_list([GOOD_ROW] * 50).to_parquet(str(path))
    path.write_bytes(path.read_bytes()[:-200])


def _not_objects(path):
    path.write_text(json.dumps(GOOD_ROW) + "\n[1, 2]\n")


FILES = [
    ("malformed JSONL line", "traces.jsonl", _malformed, "traces.jsonl: line 2: not valid JSON"),
    ("empty JSONL", "traces.jsonl", _empty, "traces.jsonl: (file): the file is empty"),
    ("truncated parquet", "traces.parquet", _truncated, "traces.parquet: (file): not a readable parquet file"),
    ("a line that is no object", "traces.jsonl", _not_objects, "traces.jsonl: line 2: a JSON list, not an object"),
]


@pytest.mark.parametrize("label,name,make,expected", FILES, ids=[f[0] for f in FILES])
def test_unreadable_file_is_one_data_error(tmp_path, label, name, make, expected):
    make(tmp_path / name)
    with pytest.raises(DataError) as error:
        load_rows_or_dataset(str(tmp_path / name))
    assert expected in str(error.value) and "Fix: " in str(error.value)
    assert "\n" not in str(error.value)


def _recipe(tmp_path, data, steps="[{step: filter}]", extra=""):
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nrun_dir: {tmp_path / 'run'}\nstages:\n"
                    f"  curate: {{kind: curate, data: {data}, steps: {steps}{extra}}}\n")
    return path


@pytest.mark.parametrize("label,name,make,expected", FILES, ids=[f[0] for f in FILES])
def test_run_on_unreadable_file_exits_2_with_one_line(tmp_path, capsys, label, name, make, expected):
    make(tmp_path / name)
    assert main(["run", str(_recipe(tmp_path, tmp_path / name))]) == 2
    assert expected in one_error_line(capsys)


def one_error_line(capsys) -> str:
    """The one line the CLI printed for the error (datasets' progress bars may come before it), no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err and err.strip().endswith(errors[0]), err
    return errors[0]


def test_curate_names_the_missing_column(tmp_path, capsys):
    rows = tmp_path / "qa.jsonl"
    rows.write_text(json.dumps({"question": "What is 2 plus 2?", "answer": "4"}) + "\n")
    assert main(["run", str(_recipe(tmp_path, rows, steps="[{step: dedup, on: problem}]"))]) == 2
    err = one_error_line(capsys)
    assert f"{rows}: column problem: missing; curate reads it (the data has: question, answer)" in err
    assert "columns: {THEIRS: problem}" in err


def test_data_ref_renaming_a_missing_column_or_with_no_rows(tmp_path, capsys):
    rows = tmp_path / "traces.jsonl"
    rows.write_text(json.dumps(GOOD_ROW) + "\n")
    assert main(["run", str(_recipe(tmp_path, f"{{path: {rows}, columns: {{question: problem}}}}"))]) == 2
    assert f"{rows}: columns: no column 'question' to rename (it has: id, problem," in one_error_line(capsys)
    empty = tmp_path / "none.parquet"
    datasets.Dataset.from_dict({"problem": [], "response": []}).to_parquet(str(empty))
    assert main(["run", str(_recipe(tmp_path, empty))]) == 2
    assert f"{empty}: rows: the file has no rows. Fix: give a file with rows" in one_error_line(capsys)
    assert main(["run", str(_recipe(tmp_path, f"{{path: {rows}, limit: 0}}"))]) == 2
    assert f"{rows}: rows: no rows to read (limit: 0). Fix: give data with rows" in one_error_line(capsys)


def test_curate_with_no_row_left_fails_unless_allowed(tmp_path, capsys):
    rows = tmp_path / "traces.jsonl"
    rows.write_text(json.dumps({**GOOD_ROW, "response": "4", "thinking": None}) + "\n")
    assert main(["run", str(_recipe(tmp_path, rows))]) == 2
    err = one_error_line(capsys)
    assert "rows: curate kept 0 of 1 rows (filter dropped 1)" in err and "allow_empty: true" in err
    assert json.loads((tmp_path / "run" / "curate" / "funnel.json").read_text())["rows_out"] == 0  # kept for reading
    assert not (tmp_path / "run" / "curate" / "DONE").exists()
    assert main(["run", str(_recipe(tmp_path, rows, extra=", allow_empty: true"))]) == 0
    assert (tmp_path / "run" / "curate" / "DONE").exists()


def test_released_offline_without_a_copy_is_one_line(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["run", str(_recipe(tmp_path, "{released: openr1-math-220k}"))]) == 2
    err = one_error_line(capsys)
    assert err == ("error: openr1-math-220k: (released): not on this machine and the hub is unreachable "
                   "(HF_HUB_OFFLINE). Fix: download open-r1/OpenR1-Math-220k and point at it with "
                   "{released: openr1-math-220k, path: FOLDER}")


def test_real_process_on_a_malformed_file(tmp_path):
    _malformed(tmp_path / "traces.jsonl")
    out = subprocess.run([sys.executable, "-m", "pipeline", "run", str(_recipe(tmp_path, tmp_path / "traces.jsonl"))],
                         capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    bad_line = json.dumps(GOOD_ROW)[:-1]
    expected = (f"error: {tmp_path / 'traces.jsonl'}: line 2: not valid JSON (Expecting ',' delimiter at column "
                f"{len(bad_line) + 1}). Fix: make every line one JSON object {{\"column\": value}}")
    assert errors == [expected], out.stderr[-2000:]
    assert "Traceback" not in out.stderr
