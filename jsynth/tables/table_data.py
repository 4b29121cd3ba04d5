"""A table ready for training: the encoded rows, the fitted transform and the target's labels."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from jsynth.tables.columns import DEFAULT_MAX_CATEGORIES, ColumnInfo, infer_columns
from jsynth.tables.errors import TableError
from jsynth.tables.modes import DEFAULT_FIT_ROWS
from jsynth.tables.read import read_table
from jsynth.tables.transform import TableTransform, display_name


# eq=False: the generated __eq__ would compare arrays element-wise; identity is what we want.
@dataclasses.dataclass(frozen=True, eq=False)
class TableData:
    """An encoded table held in memory.

    Attributes:
      rows: float32 (N, D), the table in ``transform.layout``.
      transform: what encoded it (and decodes samples back).
      columns: the ColumnInfos, in the table's order (``transform.columns``).
      labels: int32 (N,) index of each row's target value in the target's DiscreteSpan, or None
        without a target.
      class_names: the target's values as text, in label order (``"(missing)"`` for missing);
        () without a target.
      target: the target column's name, or None.
      name: where the table came from (the spec), for logs and checkpoints.
      source_digest: sha256 of the table as read (see ``content_digest``).
    """

    rows: np.ndarray
    transform: TableTransform
    columns: tuple[ColumnInfo, ...]
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    target: str | None
    name: str
    source_digest: str = ""

    def __post_init__(self):
        if self.rows.dtype != np.float32 or self.rows.ndim != 2 or \
                self.rows.shape[1] != self.transform.output_dim:
            raise TableError(f"table {self.name!r}: rows must be float32 (N, "
                             f"{self.transform.output_dim}), got {self.rows.dtype} {self.rows.shape}.")
        if self.labels is not None and self.labels.shape != (len(self.rows),):
            raise TableError(f"table {self.name!r}: labels must have shape ({len(self.rows)},), "
                             f"got {self.labels.shape}.")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def content_digest(self) -> str:
        """sha256 of the table's content, what a checkpoint records so a resume on a changed file
        is caught: the source table's hash when loaded from a file, else the rows' and labels'."""
        if self.source_digest:
            return self.source_digest
        digest = hashlib.sha256(np.ascontiguousarray(self.rows).data)
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels).data)
        return digest.hexdigest()


def frame_digest(frame: pd.DataFrame) -> str:
    """sha256 of a DataFrame's names, dtypes and values (pandas' row hashes; ~10 ms for adult)."""
    digest = hashlib.sha256(json.dumps([[str(n), str(t)] for n, t in frame.dtypes.items()]).encode())
    digest.update(np.ascontiguousarray(pd.util.hash_pandas_object(frame, index=False).to_numpy()).data)
    return digest.hexdigest()


def table_data(frame: pd.DataFrame, transform: TableTransform, target: str | None, name: str,
               seed: int = 0) -> TableData:
    """Encodes ``frame`` with ``transform`` into a TableData (labels from ``target``)."""
    rows = transform.encode(frame, seed=seed)
    labels, class_names = None, ()
    if target is not None:
        spans = [span.column for span in transform.discrete_spans]
        if target not in spans:
            raise TableError(f"target {target!r} is not a categorical column of this transform; "
                             f"the categorical columns are {', '.join(spans) or '(none)'}.")
        span = transform.discrete_spans[spans.index(target)]
        labels = np.argmax(rows[:, span.start:span.start + span.width], axis=1).astype(np.int32)
        class_names = tuple(display_name(c) for c in span.categories)
    return TableData(rows, transform, transform.columns, labels, class_names, target, name,
                     frame_digest(frame))


def load_table_data(spec: str, discrete_columns: Sequence[str] | None = None, target: str | None = None,
                    max_modes: int = 10, seed: int = 0, *, max_categories: int = DEFAULT_MAX_CATEGORIES,
                    fit_rows: int = DEFAULT_FIT_ROWS, transform: TableTransform | None = None) -> TableData:
    """Reads, infers, fits and encodes the table a spec names.

    Args:
      spec: ``csv:PATH`` or ``parquet:PATH`` (or a path with a known extension).
      discrete_columns: columns to treat as categorical whatever their dtype.
      target: the label column (categorical), or None.
      max_modes: the most modes per continuous column.
      seed: seeds the transform's fit and the encoding.
      max_categories: text columns keep at most this many categories (the rest: "other").
      fit_rows: rows per column the mixtures are fitted on.
      transform: a transform fitted before (e.g. read back from a workdir): used as it is instead
        of fitting a new one, after checking it matches the table's columns.

    Raises:
      TableError: a bad table, unknown column names, or a transform that does not fit the table.
    """
    frame = read_table(spec)
    if transform is None:
        try:
            columns = infer_columns(frame, discrete_columns, target, max_categories)
        except TableError as error:  # name the file: infer_columns only sees a DataFrame
            raise TableError(f"{spec}: {error}") from None
        transform = TableTransform.fit(frame, columns, max_modes=max_modes, fit_rows=fit_rows, seed=seed)
    else:
        names = [str(n) for n in frame.columns]
        expected = [c.name for c in transform.columns]
        if names != expected:
            raise TableError(f"{spec}: columns {', '.join(names)} differ from the ones the saved "
                             f"transform was fitted on ({', '.join(expected)}); use the same table.")
    return table_data(frame, transform, target, spec, seed=seed)
