"""Dataset cards: valid HF front matter, the funnel and stats in the body, a histogram, and refresh from the folder."""

import glob

import datasets
import pytest
import yaml

from pipeline.data import dataset_card as cards
from pipeline.data.schema import trace_row

FUNNEL = {"rows_in": 10, "rows_out": 6, "columns_written": ["score"], "steps": [
    {"step": "verify", "rows_in": 10, "rows_out": 7, "dropped": {"score below threshold": 3}},
    {"step": "decontaminate", "rows_in": 7, "rows_out": 6, "dropped": {"contaminated": 1}, "ngram": 8,
     "benchmarks": ["math500", "gsm8k"], "flagged": {"math500": 1, "gsm8k": 0}},
]}
PROVENANCE = {"recipe": "r1-distill", "stage": "curate", "fingerprint": "abc123",
              "upstream": {"generate": {"teacher": "some/teacher", "sampling": {"temperature": 0.6, "n": 4}}}}
COST = {"generate": {"kind": "generate", "wall_s": 3600.0, "device_hours": 8.0, "cost_usd": 16.0,
                     "tokens_generated": 123456}}


def _save(folder, n=6, dict_splits=False):
    rows = [trace_row(f"Problem {i}?", "think " * (i + 1), f"answer {i}", id=f"p{i}", source="t", gold_answer=str(i))
            for i in range(n)]
    ds = datasets.Dataset.from_list(rows)
    (datasets.DatasetDict({"train": ds, "test": ds.select(range(2))}) if dict_splits else ds).save_to_disk(folder)
    return folder


def test_card_front_matter_body_and_histogram(tmp_path):
    folder = _save(tmp_path / "ds")
    path = cards.write_card(folder, funnel=FUNNEL, provenance=PROVENANCE, cost=COST,
                            overrides={"license": "apache-2.0", "pretty_name": "Tiny traces"})
    assert path == folder / "README.md"
    front, body = cards.parse_card(path)
    assert front["license"] == "apache-2.0" and front["pretty_name"] == "Tiny traces"
    assert front["task_categories"] == ["text-generation"] and front["language"] == ["en"]
    assert front["size_categories"] == ["n<1K"]
    data_files = front["configs"][0]["data_files"]
    assert front["configs"][0]["config_name"] == "default" and data_files[0]["split"] == "train"
    assert glob.glob(str(folder / data_files[0]["path"]))  # the pattern finds the arrow shard
    assert "| verify | 10 | 3 | score below threshold: 3 | 7 |" in body
    assert "| math500 | 1 |" in body and "word 8-gram shared" in body
    assert "some/teacher" in body and "`abc123`" in body
    assert "| generate | generate | 3,600 | 8 | 16 | 123,456 |" in body
    assert "&lt;think>" in body and "<think>\\n" not in body  # no raw tags in the column table
    assert "| thinking | 6 | 1 | 3.5 | 3.5 |" in body  # whitespace tokens of "think " * (i + 1)
    assert (folder / cards.HISTOGRAM).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert datasets.load_from_disk(str(folder)).num_rows == 6  # the folder still loads


def test_defaults_without_any_metadata(tmp_path):
    folder = _save(tmp_path / "plain")
    front, body = cards.parse_card(cards.refresh_card(folder))
    assert front["license"] == "other" and front["pretty_name"] == "plain"
    assert "## Token lengths" in body and "## Curation funnel" not in body


def test_refresh_keeps_provenance_from_the_sidecar_and_recounts(tmp_path):
    folder = _save(tmp_path / "ds")
    cards.write_card(folder, funnel=FUNNEL, provenance=PROVENANCE, overrides={"license": "mit"})
    (folder / "README.md").unlink()
    (folder / cards.HISTOGRAM).unlink()
    front, body = cards.parse_card(cards.refresh_card(folder / "README.md"))
    assert front["license"] == "mit" and "some/teacher" in body and "score below threshold: 3" in body
    assert (folder / cards.HISTOGRAM).exists()


def test_refresh_without_sidecar_keeps_hand_written_front_matter(tmp_path):
    folder = _save(tmp_path / "ds")
    (folder / "README.md").write_text("---\nlicense: cc-by-4.0\npretty_name: Mine\nsize_categories: [wrong]\n---\n"
                                      "old body\n")
    front, body = cards.parse_card(cards.refresh_card(folder))
    assert front["license"] == "cc-by-4.0" and front["pretty_name"] == "Mine"
    assert front["size_categories"] == ["n<1K"] and "old body" not in body


def test_dataset_dict_folder_lists_each_split(tmp_path):
    folder = _save(tmp_path / "dd", dict_splits=True)
    front, body = cards.parse_card(cards.write_card(folder))
    files = {f["split"]: f["path"] for f in front["configs"][0]["data_files"]}
    assert files == {"train": "train/data-*.arrow", "test": "test/data-*.arrow"}
    assert all(glob.glob(str(folder / pattern)) for pattern in files.values())
    assert "train (6 rows), test (2 rows)" in body


@pytest.mark.parametrize("n, bucket", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (220_000, "100K<n<1M"),
                                       (10**13, "n>1T")])
def test_size_categories(n, bucket):
    assert cards.size_category(n) == bucket


def test_parse_card_reads_yaml_front_matter(tmp_path):
    (tmp_path / "README.md").write_text("---\na: [1, 2]\n---\n\n# Title\n")
    assert cards.parse_card(tmp_path) == ({"a": [1, 2]}, "# Title\n")
    (tmp_path / "README.md").write_text("---\na: 1\n")
    with pytest.raises(ValueError, match="never closed"):
        cards.parse_card(tmp_path)
    assert yaml.safe_load("x: 1") == {"x": 1}


def test_reasonforge_card_command(tmp_path, capsys):
    from pipeline.cli import main

    folder = _save(tmp_path / "ds")
    assert main(["card", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "README.md")
    assert cards.parse_card(folder)[0]["license"] == "other"
    assert main(["card", str(tmp_path)]) == 2
    assert "not a `datasets` save_to_disk folder" in capsys.readouterr().err
