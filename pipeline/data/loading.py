"""Turn a DataRef into a `datasets.Dataset`: an upstream stage's output, a released dataset, a file or a hub id."""

from __future__ import annotations


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
        data = data.rename_columns(dict(ref.columns))
    if ref.limit is not None:
        data = data.select(range(min(ref.limit, len(data))))
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
        raise RuntimeError(f"{where} has no split '{split}'; it has: {', '.join(data)}")
    return data[split]
