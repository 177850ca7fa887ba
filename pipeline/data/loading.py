"""Turn a DataRef into a `datasets.Dataset`: an upstream stage's output, a released dataset, a file or a hub id.

A rename of a column the data lacks, a split it lacks, and data with no row at all are DataErrors (one line, exit 2):
a stage handed zero rows would otherwise fail deep inside a trainer, or succeed with nothing.
"""

from __future__ import annotations

from pipeline.data.errors import DataError


def load_data_ref(ref, ctx=None):
    import datasets

    if ref.stage:
        folder = ctx.upstream_result(ref.stage).dataset
        if not folder:
            raise RuntimeError(f"stage '{ref.stage}' produced no dataset")
        data = datasets.load_from_disk(folder)
        data = _pick_split(data, ref.split, f"stage '{ref.stage}'")
    elif ref.released:
        from pipeline.data.adapters import load_released

        data = load_released(ref.released, path=ref.path, split=ref.split or "train", keep=ref.keep or "correct")
    else:
        from pipeline.data.sources import load_rows_or_dataset

        data = load_rows_or_dataset(ref.path, split=ref.split)
    if ref.columns:
        missing = [name for name in ref.columns if name not in data.column_names]
        if missing:
            raise DataError(ref.describe(), "columns", f"no column '{missing[0]}' to rename (it has: "
                            f"{', '.join(data.column_names)})", "rename one of the columns it has")
        data = data.rename_columns(dict(ref.columns))
    if ref.limit is not None:
        data = data.select(range(min(ref.limit, len(data))))
    if len(data) == 0:
        raise DataError(ref.describe(), "rows", "no rows to read" + (f" (limit: {ref.limit})" if ref.limit == 0 else ""),
                        "give data with rows; an upstream stage with allow_empty: true may have kept none")
    return data


def _pick_split(data, split, where):
    import datasets

    if not isinstance(data, datasets.DatasetDict):
        return data
    if split is None:
        if len(data) == 1:
            return next(iter(data.values()))
        split = "train"
    if split not in data:
        raise DataError(where, "split", f"no split '{split}'; it has: {', '.join(data)}", "set split: to one of them")
    return data[split]
