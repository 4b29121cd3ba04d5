"""``evaluate_table``: every table metric of a synthetic table against real data, and its protocol.

The JSON keys (the contract in DESIGN.md), each computed on tables aligned by ``frames.align``:

* ``column_shapes``: mean over columns of 1 - KS (continuous) or 1 - TVD (categorical) (``shapes``);
* ``column_pair_trends``: mean over column pairs of correlation or contingency similarity (``trends``);
* ``tstr_f1``, ``tstr_accuracy``, ``trtr_f1``, ``trtr_accuracy``, ``utility_ratio``: four
  classifiers trained on synthetic vs on real rows, tested on the holdout (``utility``; None
  without a target);
* ``dcr_share``, ``nndr_median``, ``mia_auc`` (and ``dcr_train_closer_share``): distances in the
  one-hot + standardised space fitted on the real training table (``privacy``);
* ``protocol``: ``{"name": ..., ...}``, the choices behind the numbers, as for images.

Extra detail rides along: per-column and per-pair scores, per-classifier utility, missing-value
rates, row counts, seconds per stage and warnings.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from jsynth.evaluate.tables import frames as tframes
from jsynth.evaluate.tables import shapes, trends
from jsynth.evaluate.tables.encoding import encode_for_distances
from jsynth.evaluate.tables.options import TableEvalOptions
from jsynth.evaluate.tables.privacy import privacy_metrics
from jsynth.evaluate.tables.utility import PROTOCOL as UTILITY_PROTOCOL, utility

PROTOCOL_NAME = "tables-v1"
UTILITY_KEYS = ("tstr_f1", "tstr_accuracy", "trtr_f1", "trtr_accuracy", "utility_ratio")


def _options(options, target, discrete_columns, seed) -> TableEvalOptions:
    options = options or TableEvalOptions()
    changes = {}
    if target is not None:
        changes["target"] = target
    if discrete_columns is not None:
        changes["discrete_columns"] = tuple(discrete_columns)
    if seed is not None:
        changes["seed"] = int(seed)
    return dataclasses.replace(options, **changes)


def evaluate_table(synthetic: pd.DataFrame, real: pd.DataFrame, holdout: pd.DataFrame, target: str | None = None,
                   discrete_columns=None, seed: int | None = None, *, options: TableEvalOptions | None = None,
                   source: dict | None = None, keep_frames: bool = False) -> dict:
    """Measures a synthetic table against the real training table and a real holdout table.

    Args:
      synthetic: the generated rows (same columns as ``real``, any order).
      real: the real table the generator was trained on (the members).
      holdout: real rows from the same distribution the generator never saw.
      target: the label column of the utility metrics (None: no utility metrics).
      discrete_columns: numeric columns to treat as categorical.
      seed: subsamples and classifier seeds.
      options: every other knob (``TableEvalOptions``); the three arguments above override it.
      source: where the tables came from, copied into the protocol.
      keep_frames: also return the aligned tables and the DCRs under ``"_frames"`` (for the report;
        not JSON).

    Returns:
      The result dict (see the module docstring).

    Raises:
      TableEvalError (an ``InputError``): tables that cannot be compared (``frames.align``).
    """
    options = _options(options, target, discrete_columns, seed)
    seconds, warnings = {}, []
    start = time.perf_counter()
    tables = tframes.align(synthetic, real, holdout, options.target, options.discrete_columns)
    rows_given = {"synthetic": len(tables.synthetic), "real": len(tables.real), "holdout": len(tables.holdout)}
    syn, train, held = (tframes.subsample(frame, options.max_rows, options.seed + i)
                        for i, frame in enumerate((tables.synthetic, tables.real, tables.holdout)))
    tables = dataclasses.replace(tables, synthetic=syn, real=train, holdout=held)
    seconds["prepare"] = time.perf_counter() - start

    start = time.perf_counter()
    by_column = shapes.column_shape_scores(train, syn, tables.continuous)
    by_pair = trends.pair_trend_scores(train, syn, tables.continuous, options.pair_bins)
    result = {"column_shapes": float(np.mean(list(by_column.values()))),
              "column_pair_trends": trends.mean_score(by_pair)}
    seconds["fidelity"] = time.perf_counter() - start

    start = time.perf_counter()
    if options.target is None:
        result.update({key: None for key in UTILITY_KEYS})
        warnings.append("no target column (--set target=COLUMN): no utility metrics")
    else:
        scores, notes = utility(syn, train, held, options.target, tables.continuous, tables.categorical,
                                max_categories=options.max_categories, seed=options.seed)
        result.update(scores)
        warnings += notes
    seconds["utility"] = time.perf_counter() - start

    start = time.perf_counter()
    encoded = encode_for_distances(train, held, syn, continuous=tables.continuous,
                                   categorical=tables.categorical, max_categories=options.max_categories)
    privacy, dcr = privacy_metrics(*encoded, privacy_rows=options.privacy_rows,
                                   percentile=options.dcr_percentile, seed=options.seed)
    result.update(privacy)
    if privacy[f"dcr_holdout_p{options.dcr_percentile:g}"] == 0:
        warnings.append(f"over {options.dcr_percentile:g}% of holdout rows equal a training row, so the DCR "
                        "threshold is 0 and dcr_share cannot count copies; read dcr_train_closer_share")
    seconds["privacy"] = time.perf_counter() - start

    result["column_shapes_by_column"] = by_column
    result["column_pair_trends_by_pair"] = [{"columns": list(pair), "score": score} for pair, score in by_pair.items()]
    result["missing_rates"] = {c: {"real": float(np.mean(_missing(train[c]))), "synthetic": float(np.mean(_missing(syn[c])))}
                               for c in tables.columns if _missing(train[c]).any() or _missing(syn[c]).any()}
    result["protocol"] = _protocol(options, tables, rows_given, encoded[0].shape[1], source)
    result["warnings"] = warnings
    result["seconds"] = seconds
    if keep_frames:
        result["_frames"] = {"tables": tables, "dcr": dcr}
    return result


def _missing(series: pd.Series) -> np.ndarray:
    return (series == tframes.MISSING).to_numpy() if series.dtype == object else series.isna().to_numpy()


def _protocol(options: TableEvalOptions, tables, rows_given: dict, width: int, source: dict | None) -> dict:
    name = (f"{PROTOCOL_NAME}: shapes KS/TVD; pairs Pearson/contingency ({options.pair_bins} bins); "
            f"utility 4 classifiers (CTGAN paper) on holdout; privacy one-hot+standardised (fit on real), "
            f"DCR p{options.dcr_percentile:g}, distance MIA")
    return {
        "name": name,
        "target": options.target,
        "columns": {"continuous": list(tables.continuous), "categorical": list(tables.categorical)},
        "rows": {"given": rows_given, "used": {"synthetic": len(tables.synthetic), "real": len(tables.real),
                                               "holdout": len(tables.holdout)}},
        "missing": f"categorical: the category {tframes.MISSING!r}; continuous: left out of KS and correlations, "
                   "own bin in mixed pairs, median + indicator column in the encoded space",
        "utility": UTILITY_PROTOCOL,
        "privacy": {"space": f"one-hot (<= {options.max_categories} per column) + standardised numbers, "
                             "fitted on the real table", "width": width, "privacy_rows": options.privacy_rows,
                    "dcr_percentile": options.dcr_percentile},
        "options": dataclasses.asdict(options),
        "source": source or {},
    }


def summary(result: dict) -> str:
    """A few lines for a terminal: the headline numbers, warnings and where the files are."""
    from jsynth.evaluate.report import fmt

    def line(*keys):
        return "  ".join(f"{k} {fmt(result.get(k))}" for k in keys)

    lines = [f"protocol {result['protocol']['name']}",
             line("column_shapes", "column_pair_trends"),
             line("tstr_f1", "trtr_f1", "utility_ratio", "tstr_accuracy", "trtr_accuracy"),
             line("dcr_share", "dcr_train_closer_share", "nndr_median", "mia_auc")]
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    lines += [f"{k}: {result[k]}" for k in ("json", "report") if result.get(k)]
    return "\n".join(lines)
