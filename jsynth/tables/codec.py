"""The per-column arithmetic of ``TableTransform``: one column in, its segment of the matrix out,
and back (the layout and the reasons are in ``jsynth.tables.transform``'s docstring)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from jsynth.tables.columns import ColumnInfo, datetime_seconds, is_datetime
from jsynth.tables.errors import TableError

ENCODE_BLOCK = 1 << 16  # rows per block of the mode sampling (64k x 10 modes x 8 bytes: 5 MiB)


def column_values(series: pd.Series, column: ColumnInfo) -> np.ndarray:
    """A continuous column as float64 (datetimes as seconds since 1970), NaN where missing."""
    if is_datetime(column.dtype):
        if not (pd.api.types.is_datetime64_any_dtype(series.dtype)):
            raise TableError(f"column {column.name!r} should hold dates/times (it did when the "
                             f"transform was fitted), but has dtype {series.dtype}.")
        return datetime_seconds(series)
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise TableError(f"column {column.name!r} should hold numbers (it did when the transform "
                         f"was fitted), but has dtype {series.dtype}.") from None


def encode_continuous(out, start, series, column, modes, rng, unknown):
    x = column_values(series, column)
    missing = np.isnan(x)
    count = int(missing.sum())
    if count:
        if not column.has_missing and unknown == "error":
            raise TableError(f"column {column.name!r} has {count} missing value(s), but had none when "
                             "the transform was fitted, so it cannot encode them (pass "
                             "unknown='ignore' to fill them in).")
        present = x[~missing]
        fill = rng.choice(present, count) if len(present) else np.full(count, modes.means[np.argmax(modes.weights)])
        x = x.copy()
        x[missing] = fill
    means, stds = np.asarray(modes.means), np.asarray(modes.stds)
    k = len(means)
    mode = np.empty(len(x), np.int64)
    # Blocks of rows bound the (rows, modes) temporaries, whatever the table's length.
    for begin in range(0, len(x), ENCODE_BLOCK):
        mode[begin:begin + ENCODE_BLOCK] = _sample_modes(x[begin:begin + ENCODE_BLOCK], modes, rng)
    out[:, start] = np.clip((x - means[mode]) / (4 * stds[mode]), -1.0, 1.0)
    out[np.arange(len(x)), start + 1 + mode] = 1.0
    if column.has_missing:
        out[:, start + 1 + k] = ~missing
        out[:, start + 2 + k] = missing


def _sample_modes(x: np.ndarray, modes, rng: np.random.Generator) -> np.ndarray:
    """Each value's mode, sampled from its responsibilities with the Gumbel-max trick (one
    vectorised draw), among the modes within 4 stds of the value (so it is not clipped) whenever
    there is one."""
    means, stds = np.asarray(modes.means), np.asarray(modes.stds)
    z = (x[:, None] - means) / stds
    logp = np.log(np.asarray(modes.weights)) - np.log(stds) - 0.5 * z ** 2
    reach = np.abs(z) <= 4
    logp = np.where(reach | ~reach.any(axis=1, keepdims=True), logp, -np.inf)
    return np.argmax(logp + rng.gumbel(size=logp.shape), axis=1)


def encode_categorical(out, start, series, column, unknown):
    categories = list(column.categories)
    # -1 for missing values and values not among the categories; sorted out below.
    codes = pd.Index(categories, dtype=object).get_indexer(series.astype(object)).astype(np.int64)
    missing = series.isna().to_numpy()
    unseen = (codes < 0) & ~missing
    n = len(categories)
    if unseen.any():
        if column.other is not None:
            codes[unseen] = n
        elif unknown == "error":
            examples = pd.unique(series[unseen])[:5]
            raise TableError(f"column {column.name!r} holds value(s) {', '.join(map(repr, examples))} "
                             "that the transform did not see when it was fitted; pass "
                             "unknown='ignore' to leave them out.")
    if missing.any():
        if column.has_missing:
            codes[missing] = n + (column.other is not None)
        elif unknown == "error":
            raise TableError(f"column {column.name!r} has missing values but had none when the "
                             "transform was fitted; pass unknown='ignore' to leave them out.")
    rows = np.nonzero(codes >= 0)[0]
    out[rows, start + codes[rows]] = 1.0


def decode_continuous(value, mode, missing, column, modes):
    means, stds = np.asarray(modes.means), np.asarray(modes.stds)
    mode = np.clip(mode, 0, len(means) - 1)
    value = np.clip(value.astype(np.float64), -1.0, 1.0)
    x = np.clip(value * 4 * stds[mode] + means[mode], modes.low, modes.high)
    if column.dates:
        x = np.rint(x / 86400) * 86400
    elif column.integer:
        x = np.rint(x)
    return _continuous_series(x, missing, column)


def _continuous_series(x, missing, column) -> pd.Series:
    dtype = pd.api.types.pandas_dtype(column.dtype)
    if is_datetime(column.dtype):
        nanos = np.rint(x * 1e9).astype(np.int64).view("datetime64[ns]")
        if missing is not None:
            nanos[missing] = np.datetime64("NaT")
        series = pd.Series(nanos)
        if isinstance(dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_localize("UTC")
        return series.astype(dtype)
    if pd.api.types.is_integer_dtype(dtype):
        if isinstance(dtype, np.dtype):  # numpy ints hold no missing values and have a range
            info = np.iinfo(dtype)
            return pd.Series(np.clip(x, info.min, info.max).astype(dtype))
        values = pd.array(np.where(missing, 0, x).astype(np.int64) if missing is not None
                          else x.astype(np.int64), dtype="Int64")
        if missing is not None:
            values[missing] = pd.NA
        return pd.Series(values).astype(dtype)
    if missing is not None:
        x = np.where(missing, np.nan, x)
    return pd.Series(x).astype(dtype)


def decode_categorical(codes, column):
    labels = list(column.categories)
    if column.other is not None:
        labels.append(column.other)
    # The code after the labels is "missing" (when the column has missing values).
    codes = np.where((codes >= 0) & (codes < len(labels)), codes, -1)
    dtype = pd.api.types.pandas_dtype(column.dtype)
    if isinstance(dtype, pd.StringDtype) and all(isinstance(v, str) for v in labels):
        # Arrow's take builds a million strings in milliseconds; pandas' Categorical -> str
        # conversion takes about a second.
        taken = pa.array(labels, type=pa.string()).take(pa.array(codes, mask=codes < 0))
        return pd.Series(pd.array(taken, dtype=dtype))
    values = pd.Categorical.from_codes(codes, categories=labels)
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Series(values)
    return pd.Series(values).astype(dtype)
