"""Data in and out of the pipeline.

- `schema`: the canonical trace row (`trace_row`, `render_response`, `split_response`, `TRACE_COLUMNS`).
- `sources`: `load_rows_or_dataset` (local file, saved folder or hub id), `shared_data_dir`.
- `adapters`: released chain-of-thought datasets -> canonical rows, and `load_released`, `list_released`
  driven by the cards in data_cards/.
- `benchmarks`: `load_benchmark`, `list_benchmarks` (gsm8k, math500, aime24, amc23, or any problem/answer file).

Nothing is imported here, so that `pipeline.data.schema` stays cheap to import for code that never needs datasets.
"""
