"""Data in and out of the pipeline.

- `schema`: the canonical trace row (`trace_row`, `render_response`, `split_response`, `TRACE_COLUMNS`).
- `sources`: `load_rows_or_dataset` (local file, saved folder or hub id), `looks_local`.
- `errors`: `DataError`, the one-line error for bad input data (the CLI exits with status 2).
- `released`: the cards in `cards/` (package data), read without importing datasets.
- `adapters`: released chain-of-thought datasets -> canonical rows, and `load_released`, `list_released`.
- `benchmarks`: `load_benchmark`, `list_benchmarks` (gsm8k, math500, aime24, amc23 from the packaged
  `benchmark_files/`, or any problem/answer file).

Nothing is imported here, so that `pipeline.data.schema` stays cheap to import for code that never needs datasets.
"""
