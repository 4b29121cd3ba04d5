"""Tables in and out: read a CSV/Parquet table, infer its columns, and transform it reversibly to
the float matrix the tabular models (TVAE, CTGAN) train on and back.

  read_table("csv:train.csv") -> DataFrame          (TableError for bad tables)
  infer_columns(frame, discrete_columns, target)    -> ColumnInfo per column
  TableTransform.fit(frame, columns)                encode / decode / layout / discrete_spans / JSON
  load_table_data("csv:train.csv", target="income") -> TableData (what training uses)
  write_table_shard / read_table_shards             sample shards (Parquet or CSV) + manifest
"""
from jsynth.tables.columns import CATEGORICAL, CONTINUOUS, DEFAULT_MAX_CATEGORIES, ColumnInfo, infer_columns
from jsynth.tables.errors import TableError
from jsynth.tables.modes import DEFAULT_FIT_ROWS, Modes
from jsynth.tables.read import is_table_spec, read_table
from jsynth.tables.table_data import TableData, load_table_data
from jsynth.tables.table_shards import read_table_shards, write_table_shard
from jsynth.tables.transform import DiscreteSpan, Segment, TableTransform

__all__ = [
    "CATEGORICAL",
    "CONTINUOUS",
    "DEFAULT_FIT_ROWS",
    "DEFAULT_MAX_CATEGORIES",
    "ColumnInfo",
    "DiscreteSpan",
    "Modes",
    "Segment",
    "TableData",
    "TableError",
    "TableTransform",
    "infer_columns",
    "is_table_spec",
    "load_table_data",
    "read_table",
    "read_table_shards",
    "write_table_shard",
]
