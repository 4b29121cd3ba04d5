"""Synthetic, real and holdout tables checked and put in the same terms before any metric runs.

Every metric in this package works on the ``AlignedTables`` made here:

* the synthetic and holdout tables must have the real table's columns (order may differ; a
  missing or extra column is an error that names it), and none may be empty;
* a column is categorical when it holds text, booleans or pandas categories, when it is named in
  ``discrete_columns``, or when it is the target; every other column is continuous (dates become
  seconds since 1970);
* categorical values become strings, numbers written the same way in every table (``1``, ``1.0``
  and ``"1"`` are one category, so a CSV round trip changes nothing), and a missing value becomes
  the category ``MISSING``: missing values are data, and their rate is compared like any other
  category's;
* continuous values become float64 with NaN for missing; text in a continuous column of the
  synthetic or holdout table is an error that names the column and the value.

The target must have two or more classes in the real table and in the holdout (utility needs a
classifier and an F1); the synthetic table may have one (a collapsed generator is a result, not a
mistake).
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from jsynth.errors import InputError

MISSING = "<missing>"  # the category of a missing categorical value
MAX_TARGET_CLASSES = 100
_WHOLE_NUMBER = re.compile(r"^([+-]?\d+)\.0*$")


class TableEvalError(InputError):
    """A table that cannot be evaluated as given; the message names the table and column."""


@dataclasses.dataclass(frozen=True, eq=False)
class AlignedTables:
    """Three tables with the same columns in the real table's order (see the module docstring).

    Attributes:
      synthetic, real, holdout: DataFrames; categorical columns hold str (``MISSING`` for missing),
        continuous columns float64 (NaN for missing).
      continuous, categorical: column names of each kind, in the real table's order.
      target: the label column, or None.
    """

    synthetic: pd.DataFrame
    real: pd.DataFrame
    holdout: pd.DataFrame
    continuous: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str | None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.real.columns)

    def kind(self, column: str) -> str:
        return "continuous" if column in self.continuous else "categorical"


def _is_text(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series)) \
        or pd.api.types.is_bool_dtype(series)


def _check_frame(frame, name: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TableEvalError(f"the {name} table must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise TableEvalError(f"the {name} table is empty ({frame.shape[0]} rows, {frame.shape[1]} columns); "
                             "give a table with a header row and at least one row")
    duplicates = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicates:
        raise TableEvalError(f"the {name} table has duplicate column names {duplicates}; rename them")
    return frame


def _check_columns(frame: pd.DataFrame, real: pd.DataFrame, name: str) -> pd.DataFrame:
    missing = [c for c in real.columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in real.columns]
    if missing or extra:
        parts = ([f"lacks the real columns {missing}"] if missing else []) + \
                ([f"has columns the real table lacks {extra}"] if extra else [])
        raise TableEvalError(f"the {name} table {' and '.join(parts)}; its columns must be the real "
                             f"table's: {list(real.columns)}")
    return frame[list(real.columns)]


def category_labels(series: pd.Series) -> pd.Series:
    """Values as category strings, whole numbers without a decimal point, missing as ``MISSING``."""
    present = series.notna()
    out = pd.Series(MISSING, index=series.index, dtype=object)
    values = series[present]

    def label(value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        if isinstance(value, (float, np.floating)):
            return str(int(value)) if float(value).is_integer() else repr(float(value))
        text = str(value)
        whole = _WHOLE_NUMBER.match(text)  # "13.0" in a CSV means the category 13 of a numeric column
        return whole.group(1) if whole else text

    codes, uniques = pd.factorize(values)  # label each distinct value once
    out[present] = np.asarray([label(u) for u in uniques] + [MISSING], dtype=object)[codes]
    return out


def _continuous(series: pd.Series, name: str, column: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        seconds = (series - pd.Timestamp(0, tz=getattr(series.dt, "tz", None))).dt.total_seconds()
        return seconds.astype(np.float64)
    if pd.api.types.is_bool_dtype(series):
        return series.astype(np.float64)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        example = series[bad].iloc[0]
        raise TableEvalError(f"column {column!r} of the {name} table holds {example!r}, which is not a number, "
                             "but the column is continuous in the real table; fix the table or name the column "
                             "in --set discrete_columns=...")
    return values.astype(np.float64)


def align(synthetic, real, holdout, target: str | None = None, discrete_columns=()) -> AlignedTables:
    """Checks the three tables and puts them in the same terms (see the module docstring).

    Args:
      synthetic, real, holdout: pandas DataFrames.
      target: the label column, or None.
      discrete_columns: numeric columns to treat as categorical.

    Raises:
      TableEvalError: an empty table, columns that differ (named), an unknown target or discrete
        column, text in a continuous column, a target with fewer than two classes in the real or
        holdout table, or a target with more than ``MAX_TARGET_CLASSES`` classes.
    """
    real = _check_frame(real, "real")
    synthetic = _check_columns(_check_frame(synthetic, "synthetic"), real, "synthetic")
    holdout = _check_columns(_check_frame(holdout, "holdout"), real, "holdout")
    columns = list(real.columns)
    unknown = [c for c in discrete_columns if c not in columns]
    if unknown:
        raise TableEvalError(f"discrete_columns {unknown} are not columns of the real table; its columns: {columns}")
    if target is not None and target not in columns:
        raise TableEvalError(f"target column {target!r} is not in the real table; its columns: {columns}")
    if target is not None and len(columns) == 1:
        raise TableEvalError(f"the target {target!r} is the only column: utility needs other columns to predict "
                             "it from; leave the target out (no --set target)")
    categorical = tuple(c for c in columns if c in discrete_columns or c == target or _is_text(real[c]))
    continuous = tuple(c for c in columns if c not in categorical)
    frames = {}
    for name, frame in (("synthetic", synthetic), ("real", real), ("holdout", holdout)):
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        for column in columns:
            series = frame[column].reset_index(drop=True)
            out[column] = category_labels(series) if column in categorical else _continuous(series, name, column)
        frames[name] = out
    if target is not None:
        _check_target(frames, target)
    return AlignedTables(frames["synthetic"], frames["real"], frames["holdout"], continuous, categorical, target)


def _check_target(frames: dict, target: str) -> None:
    for name in ("real", "holdout"):
        classes = sorted(set(frames[name][target].unique()) - {MISSING})
        if len(classes) < 2:
            raise TableEvalError(f"target column {target!r} has {len(classes)} class(es) in the {name} table "
                                 f"({classes[:5]}); utility metrics need two or more: choose another target "
                                 "or leave it out (no --set target)")
    count = frames["real"][target].nunique()
    if count > MAX_TARGET_CLASSES:
        raise TableEvalError(f"target column {target!r} has {count} distinct values: it looks continuous, and "
                             f"the utility metrics classify (at most {MAX_TARGET_CLASSES} classes); choose a "
                             "categorical target")


def subsample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows drawn without replacement by ``default_rng(seed)``, in their order."""
    if len(frame) <= max_rows:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))
    return frame.iloc[rows].reset_index(drop=True)
