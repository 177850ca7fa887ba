"""Data sources, released-dataset adapters and named benchmarks, offline, on fixtures and the packaged files."""

import json
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest

from pipeline.data.adapters import ADAPTERS, DEFAULT_COLUMNS, gsm8k_rationale, list_released, load_released, read_card
from pipeline.data.benchmarks import list_benchmarks, load_benchmark, normalize_gold
from pipeline.data.errors import DataError
from pipeline.data.schema import TRACE_COLUMNS, split_response
from pipeline.data.sources import load_rows_or_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "released"
RELEASED = ["bespoke-stratos-17k", "gsm8k-rationales", "limo", "openr1-math-220k", "openthoughts-114k", "s1k-1.1"]


def load_fixture(name, keep="all", **kwargs):
    return load_released(name, path=str(FIXTURES / f"{name}.jsonl"), keep=keep, **kwargs)


def assert_canonical(row):
    assert list(row) == list(TRACE_COLUMNS)
    assert row["problem"] and row["answer"] and row["id"]
    assert split_response(row["response"]) == (row["thinking"], row["answer"])
    assert row["messages"] == [{"role": "user", "content": row["problem"]},
                               {"role": "assistant", "content": row["response"]}]
    for marker in ("<|begin_of_thought|>", "<|end_of_solution|>", "<<"):
        assert marker not in row["response"]


def test_every_card_names_an_adapter_and_the_columns_it_reads():
    assert [name for name, _ in list_released()] == RELEASED
    for name in RELEASED:
        card = read_card(name)
        assert {"hub_id", "license", "size", "adapter", "columns"} <= set(card)
        assert card["columns"] == DEFAULT_COLUMNS[card["adapter"]] | card["columns"]
        assert set(card["columns"]) <= set(DEFAULT_COLUMNS[card["adapter"]]), name
    assert read_card("gsm8k-rationales")["shared_path"] == "traces/gsm8k_train.jsonl"
    assert set(ADAPTERS) == {read_card(name)["adapter"] for name in RELEASED}


@pytest.mark.parametrize("name", RELEASED)
def test_each_adapter_maps_its_fixture_to_the_canonical_schema(name):
    ds = load_fixture(name)
    assert set(ds.column_names) == set(TRACE_COLUMNS)
    assert all(row["source"] == name for row in ds)
    for row in ds:
        if row["thinking"] is not None:
            assert_canonical(row)


def test_openr1_gives_one_row_per_generation_with_its_flags():
    ds = load_fixture("openr1-math-220k")
    assert len(ds) == 5
    assert ds["sample_index"] == [0, 1, 2, 0, 1]
    assert ds["verified"] == [True, False, False, True, True]  # row 2, generation 0: the Llama judge said yes
    assert ds["finish_reason"] == ["stop", "stop", "length", "stop", "stop"]
    assert ds[0]["thinking"] == "Odd numbers 1, 3, 5, 7. Sum is 16." and ds[0]["gold_answer"] == "16"
    assert ds[2]["thinking"] is None  # a truncated generation has no closed think block
    correct = load_fixture("openr1-math-220k", keep="correct")
    assert len(correct) == 3 and all(correct["verified"])


def test_stratos_format_splits_thought_and_solution():
    row = load_fixture("bespoke-stratos-17k")[0]
    assert row["thinking"] == "A cube has 12 edges: 4 on top, 4 on the bottom, 4 vertical."
    assert row["answer"] == "A cube has $\\boxed{12}$ edges." and row["gold_answer"] is None
    kept = load_fixture("openthoughts-114k", keep_system=True)[0]
    assert kept["messages"][0]["role"] == "system" and "Thought and Solution" in kept["messages"][0]["content"]


def test_s1k_reads_the_deepseek_fields_and_grades():
    ds = load_fixture("s1k-1.1")
    assert ds["verified"] == [True, False]
    assert ds[0]["thinking"].startswith("Okay, 3 factorial") and ds[0]["answer"] == "**Answer:** $3! = 6$"
    assert ds[0]["gold_answer"] == "The answer is 6, since 3! = 6."
    assert len(load_fixture("s1k-1.1", keep="correct")) == 1
    assert load_fixture("s1k-1.1", teacher="gemini")["answer"] == ["6", "1024"]


def test_limo_and_gsm8k_answers():
    limo = load_fixture("limo")
    assert limo[0]["answer"] == "**Final Answer**\n\\boxed{6}" and limo[0]["thinking"].endswith("Yes, six.")
    assert limo[1]["answer"] == "\\boxed{1}" and limo[1]["gold_answer"] == "1"
    gsm = load_fixture("gsm8k-rationales")
    assert gsm[1]["thinking"] == ("In 4 days it sells 450 * 4 = 1,800 eggs.\n"
                                  "In all it sells 1800 + 300 = $2,100 eggs.")
    assert gsm["answer"] == gsm["gold_answer"] == ["31", "2100"]
    assert gsm8k_rationale("a = <<1+1=2>>2\n#### 2") == ("a = 2", "2")


def test_a_raw_file_without_the_adapter_columns_is_refused():
    with pytest.raises(DataError, match=r"lacks the columns \['generations', 'problem'\]"):
        load_released("openr1-math-220k", path=str(FIXTURES / "limo.jsonl"))


def test_released_default_keeps_correct_and_complete_generations(tmp_path):
    """{released: openr1-math-220k} fed every generation on, wrong and truncated ones too; now only the ones the
    release marks correct AND finished, unless keep="all"."""
    raw = {"problem": "2+2?", "answer": "4", "uuid": "u1", "generations": [
        "<think>\n2+2=4\n</think>\n\\boxed{4}", "<think>\n2+2=5\n</think>\n\\boxed{5}", "<think>\n2+2 is", "<think>\nok"],
        "correctness_math_verify": [True, False, True, True], "correctness_llama": None,
        "finish_reasons": ["stop", "stop", "length", "stop"], "is_reasoning_complete": [True, True, False, True]}
    path = tmp_path / "openr1.jsonl"
    path.write_text(json.dumps(raw) + "\n")
    everything = load_released("openr1-math-220k", path=str(path), keep="all")
    assert everything["sample_index"] == [0, 1, 2, 3]
    kept = load_released("openr1-math-220k", path=str(path))
    assert kept["sample_index"] == [0, 3] and all(kept["verified"]) and set(kept["finish_reason"]) == {"stop"}


def test_released_data_ref_in_a_stage_uses_path_and_keep(tmp_path):
    from pipeline.data.loading import load_data_ref
    from pipeline.run.refs import parse_data_ref

    path = str(FIXTURES / "openr1-math-220k.jsonl")
    assert len(load_data_ref(parse_data_ref({"released": "openr1-math-220k", "path": path}))) == 3
    assert len(load_data_ref(parse_data_ref({"released": "openr1-math-220k", "path": path, "keep": "all"}))) == 5


def test_shared_data_folder_only_by_explicit_variable(tmp_path, monkeypatch):
    copy = tmp_path / "traces" / "gsm8k_train.jsonl"
    copy.parent.mkdir()
    copy.write_text((FIXTURES / "gsm8k-rationales.jsonl").read_text())
    monkeypatch.setenv("REASONFORGE_SHARED_DATA", str(tmp_path))
    ds = load_released("gsm8k-rationales")
    assert ds["answer"] == ds["gold_answer"] == ["31", "2100"]
    for row in ds:
        assert_canonical(row)


@pytest.mark.parametrize("name,rows", [("gsm8k", 1319), ("math500", 500), ("aime24", 30), ("amc23", 40)])
def test_named_benchmarks_load_from_the_packaged_files(name, rows):
    ds = load_benchmark(name)
    assert ds.column_names == ["id", "problem", "gold_answer", "level"]
    assert len(ds) == rows and len(set(ds["id"])) == rows
    assert all(ds["problem"]) and all(gold and gold.strip() for gold in ds["gold_answer"])
    if name == "math500":
        assert set(ds["level"]) == {1, 2, 3, 4, 5}
    else:
        assert set(ds["level"]) == {None}
    if name in ("gsm8k", "amc23"):
        assert all(gold.lstrip("-").isdigit() for gold in ds["gold_answer"])  # '#### 1,080' and 27.0 normalised
    assert load_benchmark(name, limit=3)["id"] == ds["id"][:3]


def test_benchmark_from_any_file_with_problem_and_answer_columns(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "2*3?", "answer": 6.0}\n')
    ds = load_benchmark(str(path))
    assert ds["gold_answer"] == ["2", "6"] and ds["id"] == ["mine-0", "mine-1"]
    ds = load_benchmark(str(path), problem_column="question", answer_column="answer", limit=1)
    assert len(ds) == 1
    with pytest.raises(ValueError, match=r"no column 'nope'"):
        load_benchmark(str(path), answer_column="nope")
    assert normalize_gold("so \\boxed{\\frac{1}{2}} done") == "\\frac{1}{2}"


def test_unknown_names_list_the_available_ones():
    with pytest.raises(ValueError, match=r"Unknown released dataset 'gsm9k'. Available: bespoke-stratos-17k, "):
        load_released("gsm9k")
    with pytest.raises(ValueError, match=r"Unknown benchmark 'aime99'. Available: gsm8k, math500, aime24, amc23"):
        load_benchmark("aime99")
    assert [name for name, _ in list_benchmarks()] == ["gsm8k", "math500", "aime24", "amc23"]


def test_sources_read_files_and_saved_folders(tmp_path):
    rows = [{"problem": f"p{i}", "answer": str(i)} for i in range(5)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "rows.parquet"))
    assert load_rows_or_dataset(str(tmp_path / "rows.parquet"), limit=2)["problem"] == ["p0", "p1"]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]),
                          "test": datasets.Dataset.from_list(rows[3:])}).save_to_disk(str(tmp_path / "saved"))
    assert len(load_rows_or_dataset(str(tmp_path / "saved"))) == 3  # train by default
    assert load_rows_or_dataset(str(tmp_path / "saved"), split="test")["answer"] == ["3", "4"]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "one"))
    assert len(load_rows_or_dataset(str(tmp_path / "one"))) == 5
    with pytest.raises(ValueError, match=r"no split 'dev'"):
        load_rows_or_dataset(str(tmp_path / "saved"), split="dev")
    with pytest.raises(DataError, match="missing.jsonl: \\(file\\): no such file or folder"):
        load_rows_or_dataset(str(tmp_path / "missing.jsonl"))


def test_hub_id_offline_fails_with_one_clear_line(monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    expected = ("someone/not-downloaded: (hub): not a local file or folder, and the hub is unreachable "
                "(HF_HUB_OFFLINE). Fix: download it first or give a local path")
    with pytest.raises(DataError) as error:
        load_rows_or_dataset("someone/not-downloaded")
    assert str(error.value) == expected
    with pytest.raises(DataError) as error:
        load_released("bespoke-stratos-17k")
    assert str(error.value) == ("bespoke-stratos-17k: (released): not on this machine and the hub is unreachable "
                                "(HF_HUB_OFFLINE). Fix: download bespokelabs/Bespoke-Stratos-17k and point at it with "
                                "{released: bespoke-stratos-17k, path: FOLDER}")
