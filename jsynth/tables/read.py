"""Reads a table (CSV with a header row, or Parquet) into a pandas DataFrame, or says clearly why not.

Spec forms: ``csv:PATH``, ``parquet:PATH``, or a plain path ending in ``.csv``, ``.csv.gz``,
``.tsv``, ``.parquet`` or ``.pq``. CSV files are parsed by pyarrow rather than pandas because
pyarrow is strict where pandas is silently lenient: a row with too many *or too few* fields is an
error (pandas pads short rows with missing values), duplicate header names are kept (pandas renames
them ``a.1``), and bytes that are not UTF-8 are reported with the column they sit in.

Types: integers stay integers (nullable ``Int64`` when the column has missing values, so they are
not silently turned into floats), ``true``/``false`` become booleans, ISO dates and timestamps
become ``datetime64`` columns, everything else numeric is ``float64`` and the rest text. Empty
fields, ``NA``, ``NaN``, ``null`` and the like are missing values.
"""
from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

from jsynth.tables.errors import TableError

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv", ".tsv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
SCHEMES = ("csv", "parquet")


def is_table_spec(spec: str) -> bool:
    """True for ``csv:...`` and ``parquet:...`` data specs (what the table loaders take)."""
    return spec.partition(":")[0] in SCHEMES


def table_path(spec: str) -> tuple[str, str]:
    """(absolute path, "csv" | "parquet") of a table spec or a plain path with a known extension."""
    scheme, sep, arg = spec.partition(":")
    if sep and scheme in SCHEMES:
        path, fmt = arg, scheme
    else:
        path, lower = spec, spec.lower()
        if lower.endswith(_CSV_SUFFIXES):
            fmt = "csv"
        elif lower.endswith(_PARQUET_SUFFIXES):
            fmt = "parquet"
        else:
            raise TableError(
                f"{spec!r} is not a table this tool can read: name it csv:PATH (a header row, "
                f"then one row per record) or parquet:PATH, or give a path ending in one of "
                f"{', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)}.")
    if not path:
        raise TableError(f"Data spec {spec!r} names no file; expected e.g. {fmt}:./train.{fmt}.")
    return os.path.abspath(os.path.expanduser(path)), fmt


def read_table(path_or_spec: str) -> pd.DataFrame:
    """Reads the table a spec or path names.

    Args:
      path_or_spec: ``csv:PATH``, ``parquet:PATH`` or a path with a known extension.

    Returns:
      A DataFrame with the file's column names, in order, and at least one row.

    Raises:
      TableError: a missing or unreadable file, an unknown extension, an empty file, a header
        without rows, ragged rows, non-UTF-8 text, duplicate or empty column names.
    """
    path, fmt = table_path(path_or_spec)
    if not os.path.exists(path):
        raise TableError(f"{path}: no such file; check the path in --data {fmt}:PATH.")
    if os.path.isdir(path):
        raise TableError(f"{path} is a folder; {fmt}: takes one {fmt} file.")
    table = _read_csv(path) if fmt == "csv" else _read_parquet(path)
    _check_names(path, table.column_names)
    if table.num_rows == 0:
        raise TableError(f"{path} has a header ({', '.join(table.column_names[:5])}"
                         f"{' ...' if table.num_columns > 5 else ''}) but no rows; a table needs "
                         "at least one row of data.")
    for name in table.column_names:
        if table.column(name).null_count == table.num_rows:
            raise TableError(f"{path}: column {name!r} is empty (every value is missing), so there is "
                             "nothing to learn from it; drop that column from the table.")
    return _to_pandas(path, table)


def _read_csv(path: str) -> pa.Table:
    if os.path.getsize(path) == 0:
        raise TableError(f"{path} is empty; a CSV table needs a header row and at least one row "
                         "of data.")
    # strings_can_be_null: an empty field is a missing value in text columns too, as in numbers.
    convert = pa_csv.ConvertOptions(strings_can_be_null=True)
    # newlines_in_values: a quoted field may span lines (slower block splitting, but never a
    # spurious "ragged row" in the middle of a quoted text).
    parse = pa_csv.ParseOptions(delimiter="\t" if ".tsv" in path.lower() else ",", newlines_in_values=True)
    try:
        return pa_csv.read_csv(path, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as error:
        raise TableError(_csv_problem(path, str(error), parse.delimiter)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise TableError(f"{path} could not be read as CSV: {error}.") from None


def _csv_problem(path: str, message: str, delimiter: str) -> str:
    """A pyarrow parse error as a message that says what to do."""
    first = message.strip().splitlines()[0] if message.strip() else message
    if "Empty CSV file" in message:
        return f"{path} is empty; a CSV table needs a header row and at least one row of data."
    if "Expected" in message and "columns" in message:
        line = _ragged_line(path, delimiter)
        where = f"line {line}" if line else "a row"
        return (f"{path} has ragged rows: {where} has a different number of fields than the header "
                f"({first.replace('CSV parse error: ', '')}). Fix or drop that row (a field that "
                "contains the delimiter must be quoted).")
    if "UTF8" in message or "UTF-8" in message or "utf8" in message:
        return (f"{path} holds bytes that are not UTF-8 text ({first}); re-encode the file, e.g. "
                f"`iconv -f latin1 -t utf-8 {os.path.basename(path)} > fixed.csv`.")
    return f"{path} could not be parsed as CSV with a header row: {first}"


def _ragged_line(path: str, delimiter: str) -> int | None:
    """The 1-based line of the first row whose field count differs from the header's (only run
    after pyarrow reported one, to name it; streams the file)."""
    import csv
    import gzip
    import bz2

    opener = gzip.open if path.endswith(".gz") else bz2.open if path.endswith(".bz2") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, delimiter=delimiter)
            width = len(next(reader))
            for row in reader:
                if row and len(row) != width:
                    return reader.line_num
    except (OSError, csv.Error, StopIteration):
        return None
    return None


def _read_parquet(path: str) -> pa.Table:
    try:
        return pa_parquet.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise TableError(f"{path} could not be read as Parquet ({str(error).rstrip('.')}); is it a "
                         "Parquet file? Name CSV files csv:PATH.") from None


def _check_names(path: str, names: list[str]) -> None:
    if not names:
        raise TableError(f"{path} has no columns.")
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise TableError(f"{path}: column name(s) {', '.join(map(repr, duplicates))} appear more than "
                         "once in the header; give every column a distinct name.")
    blank = [i for i, name in enumerate(names) if not str(name).strip()]
    if blank:
        raise TableError(f"{path}: column(s) at position {', '.join(str(i + 1) for i in blank)} have "
                         "no name in the header; name them.")


def _to_pandas(path: str, table: pa.Table) -> pd.DataFrame:
    for name, field in zip(table.column_names, table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            # pyarrow's CSV reader falls back to raw bytes for a column that is not valid UTF-8.
            raise TableError(f"{path}: column {name!r} holds bytes that are not UTF-8 text (e.g. "
                             "Latin-1); re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 "
                             f"{os.path.basename(path)} > fixed{os.path.splitext(path)[1]}`.")
    frame = table.to_pandas()
    for name, field in zip(table.column_names, table.schema):
        kind = field.type
        if pa.types.is_integer(kind) and table.column(name).null_count:
            # pyarrow hands integers with nulls over as float64; keep them integers.
            frame[name] = frame[name].astype("Int64")
        elif pa.types.is_date(kind):
            frame[name] = pd.to_datetime(frame[name])
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            try:  # non-UTF-8 bytes in Parquet strings surface here, not while reading
                table.column(name).validate(full=True)
            except pa.ArrowInvalid as error:
                raise TableError(f"{path}: column {name!r} holds bytes that are not UTF-8 text "
                                 f"({error}); re-encode it as UTF-8.") from None
    return frame
