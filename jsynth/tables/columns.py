"""What each column of a table is: continuous or categorical, its dtype, integer-ness, missing values
and categories, inferred from the data and overridable.

Rules (``infer_columns``):
  - text, booleans and pandas ``category`` columns are categorical;
  - numbers are continuous; integer dtypes (``int64``, nullable ``Int64``) come back as integers;
  - dates and timestamps are continuous (seconds since 1970) and come back as the same datetime dtype;
  - ``discrete_columns`` and the ``target`` are categorical whatever their dtype;
  - a text column with more than ``max_categories`` distinct values keeps its ``max_categories``
    most frequent values; the rest share one bucket, ``other_label`` (``"(other)"``), which is what
    decoding writes for it (an out-of-memory one-hot of 100,000 rare values helps no model, and
    values seen once identify the record they came from);
  - missing values are kept: ``has_missing`` marks the column, the transform models them.
A column whose values are all missing, a categorical number column or target with more than
``max_categories`` values, infinities, and unsupported dtypes (durations, complex numbers,
mixed objects) are ``TableError``s naming the column. A column holding one value only is kept: it
is a constant and comes back as that constant.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from jsynth.tables.errors import TableError

CONTINUOUS, CATEGORICAL = "continuous", "categorical"
DEFAULT_MAX_CATEGORIES = 1000
OTHER_LABEL = "(other)"


@dataclasses.dataclass(frozen=True)
class ColumnInfo:
    """One column as the transform sees it.

    Attributes:
      name: the column name, as in the file.
      kind: "continuous" or "categorical".
      dtype: the pandas dtype as a string (``"int64"``, ``"Int64"``, ``"float64"``, ``"str"``,
        ``"bool"``, ``"category"``, ``"datetime64[us]"`` ...): what decoding returns.
      integer: continuous values are rounded to whole numbers (whole seconds for datetimes).
      has_missing: some values are missing; the transform reproduces them at the same rate.
      categories: the categorical values kept, sorted (JSON types: str, int, float, bool); () for
        continuous columns.
      other: the label of the bucket that holds the values beyond ``categories`` (capped text
        columns), or None when every value is kept.
      dates: a datetime column whose values are all midnights (dates): decoded values are whole days.
    """

    name: str
    kind: str
    dtype: str
    integer: bool = False
    has_missing: bool = False
    categories: tuple = ()
    other: str | None = None
    dates: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype, "integer": self.integer,
                "has_missing": self.has_missing, "categories": list(self.categories),
                "other": self.other, "dates": self.dates}

    @classmethod
    def from_json(cls, data: dict) -> "ColumnInfo":
        return cls(name=data["name"], kind=data["kind"], dtype=data["dtype"],
                   integer=bool(data["integer"]), has_missing=bool(data["has_missing"]),
                   categories=tuple(data["categories"]), other=data.get("other"),
                   dates=bool(data.get("dates", False)))


def is_datetime(dtype: str) -> bool:
    return dtype.startswith("datetime64")


def infer_columns(frame: pd.DataFrame, discrete_columns: Sequence[str] | None = None,
                  target: str | None = None, max_categories: int = DEFAULT_MAX_CATEGORIES,
                  ) -> tuple[ColumnInfo, ...]:
    """Infers every column's kind (see the module docstring for the rules).

    Args:
      frame: the table, e.g. from ``read_table``.
      discrete_columns: names to treat as categorical whatever their dtype.
      target: the label column (categorical; conditional sampling and utility metrics use it).
      max_categories: text columns with more distinct values keep this many, the most frequent.

    Returns:
      One ColumnInfo per column, in the frame's order.

    Raises:
      TableError: an unknown name in ``discrete_columns``/``target``, or a column that cannot be
        modelled (the module docstring lists them).
    """
    if max_categories < 2:
        raise TableError(f"max_categories must be at least 2, got {max_categories}.")
    names = [str(name) for name in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TableError(f"column name(s) {', '.join(map(repr, repeated))} appear more than once; give "
                         "every column a distinct name.")
    discrete = _names_known(list(discrete_columns or ()), names, "discrete_columns")
    if target is not None:
        _names_known([target], names, "target")
        discrete.add(target)
    return tuple(_infer(name, frame[name], name in discrete, name == target, max_categories)
                 for name in frame.columns)


def _names_known(wanted: list[str], names: list[str], field: str) -> set[str]:
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise TableError(f"{field} names {', '.join(map(repr, unknown))}, which the table does not "
                         f"have; its columns are {', '.join(names)}.")
    return set(wanted)


def _infer(name: str, series: pd.Series, discrete: bool, is_target: bool,
           max_categories: int) -> ColumnInfo:
    dtype = series.dtype
    missing = series.isna()
    if bool(missing.all()):
        raise TableError(f"column {name!r} is empty: every value is missing, so there is nothing to "
                         "learn from it; drop that column from the table.")
    has_missing = bool(missing.any())
    text = pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype)
    boolean = pd.api.types.is_bool_dtype(dtype) or _object_of_bools(series)
    if pd.api.types.is_timedelta64_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        raise TableError(f"column {name!r} has dtype {dtype}, which tables do not support; convert "
                         "it to numbers (e.g. seconds) or text, or drop it.")
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        if discrete:
            raise TableError(f"column {name!r} holds dates/times and cannot be categorical (or the "
                             "target); remove it from discrete_columns.")
        seconds = datetime_seconds(series)
        present = seconds[~np.isnan(seconds)]
        whole = bool(np.all(present == np.round(present)))
        dates = bool(np.all(present % 86400 == 0))  # a date column (UTC midnights for time zones)
        return ColumnInfo(name, CONTINUOUS, str(dtype), integer=whole, has_missing=has_missing,
                          dates=dates)
    numeric = pd.api.types.is_numeric_dtype(dtype) and not boolean
    if numeric and not discrete:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            raise TableError(f"column {name!r} holds infinite values; replace them with numbers or "
                             "leave them empty (missing).")
        return ColumnInfo(name, CONTINUOUS, str(dtype), integer=pd.api.types.is_integer_dtype(dtype),
                          has_missing=has_missing)
    if not (numeric or text or boolean):
        types = sorted({type(v).__name__ for v in series.dropna().head(1000)})
        if types != ["str"]:
            raise TableError(f"column {name!r} holds {', '.join(types)} values (dtype {dtype}); "
                             "tables take numbers, text, booleans and dates. Convert it or drop it.")
    return _categorical(name, series, has_missing, numeric, is_target, max_categories)


def _object_of_bools(series: pd.Series) -> bool:
    """pyarrow hands a boolean column with missing values over as objects."""
    if series.dtype != object:
        return False
    values = series.dropna()
    return len(values) > 0 and all(isinstance(v, (bool, np.bool_)) for v in values.head(1000)) and \
        all(isinstance(v, (bool, np.bool_)) for v in values)


def _categorical(name: str, series: pd.Series, has_missing: bool, numeric: bool, is_target: bool,
                 max_categories: int) -> ColumnInfo:
    counts = series.value_counts(dropna=True, sort=True)
    counts = counts[counts > 0]  # a pandas category dtype lists unused categories with count 0
    other = None
    if len(counts) > max_categories:
        if is_target or numeric:
            what = "the target" if is_target else "a categorical column of numbers"
            raise TableError(
                f"column {name!r} is {what} with {len(counts)} distinct values, more than "
                f"max_categories={max_categories}; "
                + ("choose a target with fewer classes." if is_target else
                   "treat it as continuous (leave it out of discrete_columns) or raise "
                   "max_categories."))
        kept_values = counts.index[:max_categories]
        other = OTHER_LABEL
        while other in set(map(str, kept_values)):
            other += "*"
    else:
        kept_values = counts.index
    categories = tuple(sorted((_native(v) for v in kept_values), key=_sort_key))
    return ColumnInfo(name, CATEGORICAL, str(series.dtype), integer=False, has_missing=has_missing,
                      categories=categories, other=other)


def _native(value):
    """A category value as a JSON type (numpy scalars -> Python ones; other objects -> str)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def _sort_key(value):
    return (type(value).__name__, value)


def datetime_seconds(series: pd.Series) -> np.ndarray:
    """Seconds since 1970-01-01 (UTC for time-zone-aware columns) as float64; NaN where missing."""
    values = series
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    nanos = values.astype("datetime64[ns]").to_numpy()
    seconds = (nanos - np.datetime64(0, "ns")).astype(np.float64) / 1e9
    seconds[np.isnat(nanos)] = np.nan
    return seconds
