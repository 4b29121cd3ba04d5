"""The reversible transform between a table and the float matrix the tabular models train on.

Layout (``TableTransform.layout``), column by column in the table's order:
  continuous   one "tanh" segment of width 1: the value normalised within its mode,
               one "softmax" segment over the column's modes,
               and, if the column has missing values, one "softmax" segment (present, missing);
  categorical  one "softmax" segment over its categories, then the "other" bucket of a capped
               column, then "missing" if the column has missing values.

Mode-specific normalisation (CTGAN, Xu et al. 2019): a value x is given a mode k *sampled* from
its responsibilities p(k | x) under the column's mixture (``jsynth.tables.modes``), as CTGAN does,
with a seeded generator. Sampling rather than taking the argmax matters where modes overlap: with
the argmax each mode would only ever see values on its side of the boundary, a truncated
distribution with a hard edge that a generator reproduces badly; sampled modes keep each mode's
values roughly Gaussian. The normalised value is (x - mean_k) / (4 std_k) clipped to [-1, 1].
A missing continuous value is encoded as a value drawn from the column's present values
(seeded), with the (present, missing) segment saying "missing": the vector stays one a model can
produce, and decoding turns it back into a missing value.

Decoding is vectorised numpy: the argmax of every softmax segment (``compact``; also runs under
jit on a device), then one affine map per continuous column; values are clipped to the range seen
in training, integers are rounded, and every column gets back its name, position, dtype and
categories (``decode_compact``).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from jsynth.tables.columns import CATEGORICAL, CONTINUOUS, ColumnInfo, infer_columns
from jsynth.tables.codec import (column_values, decode_categorical, decode_continuous, encode_categorical,
                                 encode_continuous)
from jsynth.tables.errors import TableError
from jsynth.tables.modes import DEFAULT_FIT_ROWS, Modes, cover, fit_all_modes

JSON_FORMAT = "jsynth.tables.TableTransform"
JSON_VERSION = 1
MISSING_LABEL = "(missing)"


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of output columns that one activation produces: "tanh" (width 1) or "softmax"."""

    column: str
    activation: str
    start: int
    width: int


@dataclasses.dataclass(frozen=True)
class DiscreteSpan:
    """The softmax segment of one categorical column; ``categories`` are its values in segment
    order (the "other" label of a capped column, then None for missing, at the end)."""

    column: str
    start: int
    width: int
    categories: tuple


@dataclasses.dataclass(frozen=True)
class TableTransform:
    """Fitted transform (see the module docstring). Build with ``TableTransform.fit``.

    Attributes:
      columns: the table's columns, in order.
      modes: per column, its mixture (continuous) or None (categorical).
    """

    columns: tuple[ColumnInfo, ...]
    modes: tuple[Modes | None, ...]

    def __post_init__(self):
        if len(self.columns) != len(self.modes):
            raise TableError(f"transform has {len(self.columns)} columns but {len(self.modes)} "
                             "mode entries; it was built or edited inconsistently.")

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[ColumnInfo] | None = None, max_modes: int = 10,
            fit_rows: int = DEFAULT_FIT_ROWS, seed: int = 0, n_jobs: int | None = None) -> "TableTransform":
        """Fits the transform to a table.

        Args:
          frame: the training table.
          columns: its ColumnInfos (``infer_columns(frame)`` when None).
          max_modes: the most modes per continuous column (CTGAN: 10).
          fit_rows: each continuous column's mixture is fitted on at most this many present
            values, a seeded subsample.
          seed: seeds the subsamples and the mixture fits.
          n_jobs: worker processes for the mixture fits (default: one per core, at most one per
            continuous column).
        """
        if max_modes < 1 or fit_rows < 1:
            raise TableError(f"max_modes and fit_rows must be positive, got {max_modes} and {fit_rows}.")
        columns = tuple(infer_columns(frame) if columns is None else columns)
        _check_frame(frame, columns)
        continuous = [c for c in columns if c.kind == CONTINUOUS]
        values = []
        for column in continuous:
            x = column_values(frame[column.name], column)
            values.append(x[~np.isnan(x)])
        fitted = {column.name: cover(modes, x) for column, modes, x in
                  zip(continuous, fit_all_modes(values, max_modes, fit_rows, seed, n_jobs), values)}
        return cls(columns, tuple(fitted.get(c.name) for c in columns))

    # ---- layout -------------------------------------------------------------------------------

    @functools.cached_property
    def layout(self) -> tuple[Segment, ...]:
        """The segments covering [0, output_dim) in order (module docstring)."""
        segments, start = [], 0
        for column, modes in zip(self.columns, self.modes):
            if column.kind == CONTINUOUS:
                widths = [("tanh", 1), ("softmax", len(modes.means))]
                if column.has_missing:
                    widths.append(("softmax", 2))
            else:
                widths = [("softmax", len(span_categories(column)))]
            for activation, width in widths:
                segments.append(Segment(column.name, activation, start, width))
                start += width
        return tuple(segments)

    @functools.cached_property
    def discrete_spans(self) -> tuple[DiscreteSpan, ...]:
        """The categorical columns' softmax segments (CTGAN's conditional vector uses these)."""
        starts = self._starts
        return tuple(DiscreteSpan(c.name, starts[c.name], len(span_categories(c)), span_categories(c))
                     for c in self.columns if c.kind == CATEGORICAL)

    @property
    def output_dim(self) -> int:
        last = self.layout[-1]
        return last.start + last.width

    @functools.cached_property
    def _starts(self) -> dict[str, int]:
        starts = {}
        for segment in self.layout:
            starts.setdefault(segment.column, segment.start)
        return starts

    def column(self, name: str) -> ColumnInfo:
        for column in self.columns:
            if column.name == name:
                return column
        raise TableError(f"no column {name!r}; the columns are {', '.join(c.name for c in self.columns)}.")

    def condition(self, column: str, value) -> tuple[int, int]:
        """(index of ``column``'s DiscreteSpan, index of ``value`` in it) for conditional sampling.

        ``value`` may be the category itself or its text (``"True"``, ``"3"``, as typed on a command
        line); ``None`` or ``"(missing)"`` names the missing values, ``"(other)"`` the bucket of a
        capped column.
        """
        names = [span.column for span in self.discrete_spans]
        if column not in names:
            kind = "continuous" if any(c.name == column for c in self.columns) else "unknown"
            raise TableError(f"cannot condition on {column!r} ({kind} column); the categorical columns "
                             f"are {', '.join(names) or '(none)'}.")
        index = names.index(column)
        categories = self.discrete_spans[index].categories
        for i, category in enumerate(categories):
            if category == value and type(category) is type(value):
                return index, i
        text = str(value)
        for i, category in enumerate(categories):
            if display_name(category) == text:
                return index, i
        known = ", ".join(display_name(c) for c in categories[:20])
        other = self.column(column).other
        folded = (f" Values rarer than these were folded into {other!r} when the transform was fitted "
                  "(max_categories)." if other is not None else "")
        raise TableError(f"column {column!r} has no value {value!r}; its values are {known}"
                         f"{' ...' if len(categories) > 20 else ''}.{folded}")

    # ---- encode / decode ----------------------------------------------------------------------

    def encode(self, frame: pd.DataFrame, seed: int = 0, unknown: str = "error") -> np.ndarray:
        """The table as a float32 (N, output_dim) matrix in the layout.

        Args:
          frame: a table with (at least) the transform's columns; other columns are ignored.
          seed: seeds the mode choice and the stand-in values of missing numbers.
          unknown: "error" (default) raises on a category the transform has not seen (a text
            column with an "other" bucket puts it there instead) and on missing values in a
            column that had none; "ignore" leaves such a one-hot all zero / imputes the value.
        """
        if unknown not in ("error", "ignore"):
            raise TableError(f"unknown must be 'error' or 'ignore', got {unknown!r}.")
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise TableError(f"the table lacks column(s) {', '.join(missing)} that the transform "
                             "was fitted on.")
        self._check_memory(len(frame))
        rng = np.random.default_rng(seed)
        out = np.zeros((len(frame), self.output_dim), np.float32)
        starts = self._starts
        for column, modes in zip(self.columns, self.modes):
            series = frame[column.name]
            if column.kind == CONTINUOUS:
                encode_continuous(out, starts[column.name], series, column, modes, rng, unknown)
            else:
                encode_categorical(out, starts[column.name], series, column, unknown)
        return out

    def _check_memory(self, rows: int) -> None:
        """A clear error instead of an out-of-memory kill when the encoded matrix cannot fit."""
        needed = rows * self.output_dim * 4
        available = available_memory()
        if available is not None and needed > 0.8 * available:
            widest = sorted(self.discrete_spans, key=lambda span: -span.width)[:3]
            names = ", ".join(f"{span.column} ({span.width})" for span in widest)
            raise TableError(
                f"encoding {rows:,} rows needs {needed / 2**30:.1f} GiB ({self.output_dim} float32 "
                f"columns each) but {available / 2**30:.1f} GiB of memory is free; the widest "
                f"categorical columns are {names or '(none)'}: lower max_categories, drop columns, or "
                "use fewer rows.")

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """The table a (N, output_dim) matrix in the layout stands for (model outputs: each softmax
        segment is read by its argmax, so logits, probabilities and one-hots all work)."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[1] != self.output_dim:
            raise TableError(f"decode needs a (N, {self.output_dim}) matrix, got shape {matrix.shape}.")
        return self.decode_compact(self.compact(matrix))

    @property
    def compact_dim(self) -> int:
        """Width of ``compact``'s output: per continuous column 2 (3 with missing values), per
        categorical column 1."""
        return sum(1 if c.kind == CATEGORICAL else 2 + c.has_missing for c in self.columns)

    def compact(self, matrix, xp=np):
        """The decisions in a (N, output_dim) matrix, as a float32 (N, compact_dim) array: per
        continuous column its normalised value, its mode (argmax) and, with missing values, 1.0
        where missing; per categorical column its category index (argmax).

        Pure array code: pass ``xp=jax.numpy`` to run it inside a jitted sampler, so a device
        sends ``compact_dim`` numbers per row instead of ``output_dim`` (adult: 21 vs 155) and the
        host skips the argmaxes, the costly part of decoding in numpy.
        """
        if xp is np:
            return self._compact_numpy(np.asarray(matrix))
        starts = self._starts
        parts = []
        for column, modes in zip(self.columns, self.modes):
            start = starts[column.name]
            if column.kind == CONTINUOUS:
                k = len(modes.means)
                parts.append(matrix[:, start].astype(xp.float32))
                parts.append(xp.argmax(matrix[:, start + 1:start + 1 + k], axis=1).astype(xp.float32))
                if column.has_missing:
                    parts.append((matrix[:, start + 2 + k] > matrix[:, start + 1 + k]).astype(xp.float32))
            else:
                width = len(span_categories(column))
                parts.append(xp.argmax(matrix[:, start:start + width], axis=1).astype(xp.float32))
        return xp.stack(parts, axis=1)

    def _compact_numpy(self, matrix: np.ndarray, block: int = 8192) -> np.ndarray:
        """``compact`` in numpy, block by block over transposed rows: np.argmax over a few columns
        of a row-major matrix pays a per-row overhead (21 segments x 1M rows of adult: ~1.4 s of
        CPU); comparing whole contiguous columns of a transposed block does the same work in
        ~0.9 s (measured with random logits on this 2-core VM)."""
        starts = self._starts
        # Per compact column: ("value", column index in matrix) or ("argmax", start, width).
        plan = []
        for column, modes in zip(self.columns, self.modes):
            start = starts[column.name]
            if column.kind == CONTINUOUS:
                k = len(modes.means)
                plan += [("value", start), ("argmax", start + 1, k)]
                if column.has_missing:
                    plan.append(("argmax", start + 1 + k, 2))
            else:
                plan.append(("argmax", start, len(span_categories(column))))
        out = np.empty((len(plan), len(matrix)), np.float32)
        for r in range(0, len(matrix), block):
            part = np.ascontiguousarray(matrix[r:r + block].T)
            n = part.shape[1]
            best, greater = np.empty(n, part.dtype), np.empty(n, bool)
            for i, step in enumerate(plan):
                target = out[i, r:r + n]
                if step[0] == "value":
                    target[:] = part[step[1]]
                    continue
                _, start, width = step
                target[:] = 0
                np.copyto(best, part[start])
                for j in range(1, width):  # strict '>': ties go to the first, as np.argmax
                    np.greater(part[start + j], best, out=greater)
                    np.maximum(best, part[start + j], out=best)
                    np.copyto(target, j, where=greater)
        return out.T

    def decode_compact(self, compact: np.ndarray) -> pd.DataFrame:
        """The table a ``compact`` array stands for: original column names, order, dtypes,
        categories and missing values."""
        compact = np.asarray(compact)
        if compact.ndim != 2 or compact.shape[1] != self.compact_dim:
            raise TableError(f"decode_compact needs a (N, {self.compact_dim}) array, got shape "
                             f"{compact.shape}.")
        data, i = {}, 0
        for column, modes in zip(self.columns, self.modes):
            if column.kind == CONTINUOUS:
                missing = compact[:, i + 2] > 0.5 if column.has_missing else None
                data[column.name] = decode_continuous(compact[:, i], compact[:, i + 1].astype(np.int64),
                                                       missing, column, modes)
                i += 2 + column.has_missing
            else:
                data[column.name] = decode_categorical(compact[:, i].astype(np.int64), column)
                i += 1
        return pd.DataFrame(data, copy=False)

    # ---- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """A JSON-serialisable dict; ``TableTransform.from_json`` rebuilds an equal transform."""
        return {"format": JSON_FORMAT, "version": JSON_VERSION,
                "columns": [dict(c.to_json(), modes=None if m is None else m.to_json())
                            for c, m in zip(self.columns, self.modes)]}

    @classmethod
    def from_json(cls, data: dict) -> "TableTransform":
        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise TableError("not a saved TableTransform (no 'format': "
                             f"{JSON_FORMAT!r}); was it written by TableTransform.to_json()?")
        if data.get("version") != JSON_VERSION:
            raise TableError(f"TableTransform JSON version {data.get('version')!r}; this jsynth reads "
                             f"version {JSON_VERSION}. Refit the transform with this version.")
        columns = tuple(ColumnInfo.from_json(c) for c in data["columns"])
        modes = tuple(None if c["modes"] is None else Modes.from_json(c["modes"]) for c in data["columns"])
        return cls(columns, modes)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux: MemAvailable, which counts reclaimable caches; else
    the free physical pages), or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def span_categories(column: ColumnInfo) -> tuple:
    """A categorical column's values in segment order: categories, "other" bucket, None (missing)."""
    return (column.categories + ((column.other,) if column.other is not None else ())
            + ((None,) if column.has_missing else ()))


def display_name(category) -> str:
    """How a category is written in messages and class names."""
    return MISSING_LABEL if category is None else str(category)


def _check_frame(frame: pd.DataFrame, columns: tuple[ColumnInfo, ...]) -> None:
    names = [str(n) for n in frame.columns]
    if names != [c.name for c in columns]:
        raise TableError(f"the columns given ({', '.join(c.name for c in columns)}) are not the "
                         f"table's ({', '.join(names)}); pass infer_columns(frame) of this table.")
    if len(frame) == 0:
        raise TableError("cannot fit a transform to a table without rows.")
