"""Sample shards of tables: Parquet or CSV files written atomically, read back through the manifest.

A Parquet shard keeps the column names, order, dtypes (integers, nullable integers, booleans,
datetimes) and categories exactly; a CSV shard keeps names and order, and its values read back
with the same inference as any CSV input (``read_table``).
"""
from __future__ import annotations

import hashlib
import io
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pa_parquet

from jsynth.atomic import write_atomic
from jsynth.tables.errors import TableError
from jsynth.tables.read import read_table

TABLE_FORMATS = ("parquet", "csv")
MANIFEST = "manifest.json"


def table_shard_bytes(frame: pd.DataFrame, format: str) -> bytes:
    """A shard's file content: the same frame always gives the same bytes (sha256 in manifests)."""
    if format == "parquet":
        buffer = io.BytesIO()
        pa_parquet.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        return buffer.getvalue()
    if format == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    raise TableError(f"table shard format must be one of {', '.join(TABLE_FORMATS)}, got {format!r}.")


def write_table_shard(frame: pd.DataFrame, path: str, format: str) -> str:
    """Writes ``frame`` to ``path`` atomically (temporary file + rename) as Parquet or CSV.

    Returns:
      The sha256 of the bytes written (what the manifest records).
    """
    payload = table_shard_bytes(frame, format)
    write_atomic(path, payload)
    return hashlib.sha256(payload).hexdigest()


def read_table_shards(out_dir: str, check: bool = True) -> pd.DataFrame:
    """All the rows a sample folder holds, in shard order, read through its manifest.json.

    Args:
      out_dir: the ``jsynth sample --out`` folder.
      check: compare each shard's sha256 with the manifest's.

    Raises:
      TableError: no manifest, a manifest entry that is not a file in ``out_dir``, a shard that is
        missing or changed.
    """
    from jsynth.shards import read_manifest  # the shared manifest reader (handles half-written files)

    manifest = read_manifest(out_dir)
    where = os.path.join(out_dir, MANIFEST)
    if manifest is None:
        raise TableError(f"{where} is missing or unreadable; is {out_dir} the --out of a finished "
                         "`jsynth sample`? Rerun that command to finish it.")
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, list) or not shards:
        raise TableError(f"{where} lists no shards; rerun `jsynth sample` to write them.")
    frames = []
    for entry in shards:
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str) or os.path.basename(file) != file or file in ("", ".", ".."):
            raise TableError(f"{where} lists {entry!r}, which is not a file name inside {out_dir}; "
                             "the manifest was edited or damaged.")
        path = os.path.join(out_dir, file)
        if not os.path.exists(path):
            raise TableError(f"{path} is listed in {where} but missing; rerun `jsynth sample` with the "
                             "same arguments to write it again.")
        if check:
            with open(path, "rb") as f:
                actual = hashlib.sha256(f.read()).hexdigest()
            if actual != entry.get("sha256"):
                raise TableError(f"{path} does not match the sha256 in {where}: it was changed after "
                                 "sampling; rerun `jsynth sample` into a fresh folder.")
        frames.append(read_table(path))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
