"""Tables from disk into ``evaluate_table``, and its JSON and report folder back to disk.

``jsynth eval --samples OUT --data csv:TRAIN --holdout csv:TEST --set target=COL --json J`` comes
here (``evaluate_table_files``) when --data names a table. OUT is one table (``csv:PATH``,
``parquet:PATH`` or a path ending in .csv / .parquet) or a folder of shards: with a manifest.json
(``{"shards": [{"file", "num", "sha256"}, ...]}``, as ``jsynth sample --format parquet|csv`` writes)
every listed shard is checked against its sha256 and read in order (``jsynth.tables.read_table_shards``); without one, every .parquet /
.csv file in it, by name. Without --holdout, a share of --data (``holdout_fraction``) is held out,
and a warning says that the privacy metrics then assume the generator never saw it.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from jsynth.evaluate.tables.frames import TableEvalError
from jsynth.evaluate.tables.options import TableEvalOptions
from jsynth.evaluate.tables.suite import evaluate_table

MANIFEST = "manifest.json"
_TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


def _read(spec: str) -> pd.DataFrame:
    from jsynth.tables import read_table  # pandas/pyarrow readers with clear TableErrors

    return read_table(spec)


def read_synthetic_table(path: str) -> tuple[pd.DataFrame, dict]:
    """(the synthetic rows, where they came from) for a table file or a folder of shards.

    Raises:
      TableEvalError: a path that does not exist, a folder without tables.
      TableError: a manifest shard that is missing, outside the folder or changed since it was
        written (``jsynth.tables.read_table_shards``), a table that cannot be read.
    """
    bare = path.partition(":")[2] if path.partition(":")[0] in ("csv", "parquet") else path
    if not os.path.exists(bare):
        raise TableEvalError(f"--samples {path} does not exist; give a `jsynth sample --format parquet|csv` "
                             "output folder or one .csv / .parquet table")
    if not os.path.isdir(bare):
        return _read(path), {"samples": os.path.abspath(bare)}
    manifest_path = os.path.join(bare, MANIFEST)
    if os.path.exists(manifest_path):
        from jsynth.shards import read_manifest
        from jsynth.tables import read_table_shards  # every shard checked against its sha256

        frame = read_table_shards(bare)
        manifest = read_manifest(bare) or {}
        return frame, {"samples": os.path.abspath(bare), "shards": len(manifest.get("shards", [])),
                       **{k: manifest[k] for k in ("seed", "checkpoint_step", "dp") if k in manifest}}
    files = sorted(f for f in os.listdir(bare) if f.lower().endswith(_TABLE_SUFFIXES))
    if not files:
        raise TableEvalError(f"{bare} holds no .parquet or .csv tables and no {MANIFEST}")
    parts = [_read(os.path.join(bare, f)) for f in files]
    return pd.concat(parts, ignore_index=True), {"samples": os.path.abspath(bare), "shards": len(parts)}


def split_holdout(real: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows): a seeded random ``fraction`` of the rows held out."""
    order = np.random.default_rng(seed).permutation(len(real))
    cut = max(1, int(round(len(real) * fraction)))
    if cut >= len(real):
        raise TableEvalError(f"--data has {len(real)} row(s): too few to hold any out; give --holdout SPEC")
    return (real.iloc[np.sort(order[cut:])].reset_index(drop=True),
            real.iloc[np.sort(order[:cut])].reset_index(drop=True))


def write_outputs(result: dict, *, json_path: str | None = None, report_dir: str | None = None) -> dict:
    """Writes the JSON and (``options.report``) the report folder of an ``evaluate_table(...,
    keep_frames=True)`` result; returns the JSON-ready result with ``json`` / ``report`` paths.

    The report goes to ``report_dir``, or beside the JSON (``DIR/NAME.json`` -> ``DIR/NAME_report``).
    """
    from jsynth.evaluate.report import default_report_dir, write_json
    from jsynth.evaluate.tables.report import write_table_report

    frames = result.pop("_frames", None)
    if report_dir is None and json_path is not None:
        report_dir = default_report_dir(json_path)
    if report_dir is not None and frames is not None and result["protocol"]["options"]["report"]:
        result["report"] = write_table_report(report_dir, result, frames["tables"], frames["dcr"])
    if json_path is not None:
        result["json"] = os.path.abspath(json_path)
        write_json(json_path, result)
    return result


def evaluate_table_files(samples: str, data_spec: str, *, holdout_spec: str | None = None,
                         json_path: str | None = None, report_dir: str | None = None,
                         options: TableEvalOptions | None = None) -> dict:
    """``jsynth eval --samples`` for tables: reads the three tables, evaluates, writes JSON and report.

    Args:
      samples: the synthetic table or shard folder (see the module docstring).
      data_spec: the real training table (``csv:PATH``, ``parquet:PATH``).
      holdout_spec: the real holdout table (default: a share of ``data_spec`` held out).
      json_path, report_dir: outputs (the report defaults to beside the JSON; neither: no files).
      options: the knobs (``TableEvalOptions``; ``target`` names the label column).
    """
    synthetic, source = read_synthetic_table(samples)
    return evaluate_against_files(synthetic, source, data_spec, holdout_spec=holdout_spec, json_path=json_path,
                                  report_dir=report_dir, options=options)


def real_tables(data_spec: str, holdout_spec: str | None, options: TableEvalOptions) -> tuple:
    """(real training table, holdout table, warnings): --holdout, or a share of --data held out."""
    real = _read(data_spec)
    if holdout_spec:
        return real, _read(holdout_spec), []
    real, holdout = split_holdout(real, options.holdout_fraction, options.seed)
    return real, holdout, [f"no --holdout: {options.holdout_fraction:.0%} of --data held out; the privacy metrics "
                           "assume the generator never saw those rows (give --holdout SPEC if it did)"]


def evaluate_against_files(synthetic: pd.DataFrame, source: dict, data_spec: str, *, holdout_spec: str | None = None,
                           json_path: str | None = None, report_dir: str | None = None,
                           options: TableEvalOptions | None = None, real: tuple | None = None) -> dict:
    """A synthetic table in memory against the real tables on disk; writes the JSON and report.

    Args:
      synthetic: the generated rows.
      source: where they came from (copied into the protocol; a ``dp`` entry also into the result).
      data_spec, holdout_spec, json_path, report_dir, options: as for ``evaluate_table_files``.
      real: ``real_tables(data_spec, holdout_spec, options)`` if already read.
    """
    options = options or TableEvalOptions()
    real, holdout, notes = real or real_tables(data_spec, holdout_spec, options)
    source = {**source, "data": data_spec, "holdout": holdout_spec or f"{options.holdout_fraction:g} of data"}
    result = evaluate_table(synthetic, real, holdout, options=options, source=source, keep_frames=True)
    result["warnings"] = notes + result["warnings"]
    if "dp" in source:  # a differentially private run's budget travels with everything derived from it
        result["dp"] = source["dp"]
    return write_outputs(result, json_path=json_path, report_dir=report_dir)


def is_table_input(data_spec: str | None) -> bool:
    """True when ``jsynth eval --data`` names a table: csv:/parquet: or a .csv / .parquet path."""
    return bool(data_spec) and (data_spec.partition(":")[0] in ("csv", "parquet")
                                or data_spec.lower().endswith(_TABLE_SUFFIXES))

