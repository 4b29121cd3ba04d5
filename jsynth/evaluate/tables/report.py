"""The report folder of a table evaluation, for a person to read.

REPORT/
  metrics.md                 the metrics table, what each number means, per-column scores, the protocol
  columns/NN_NAME.png        one per column: real vs synthetic histogram (continuous, on the real
                             table's bins, missing share in the title) or bar chart (categorical: the
                             20 most frequent real categories, the rest as "other", missing as its own bar)
  pair_trends.png            heat map of 1 - pair score for every pair of columns: where the synthetic
                             table's correlations / contingencies differ from the real one's
  dcr.png                    distances to the closest training row, synthetic vs holdout

Plots use matplotlib (Agg backend), as ``jsynth.evaluate.report`` does for images.
"""
from __future__ import annotations

import io
import json
import os
import re

import numpy as np
import pandas as pd

from jsynth.atomic import write_atomic
from jsynth.evaluate.report import fmt
from jsynth.evaluate.tables.frames import MISSING

TOP_CATEGORIES = 20

# (key, label, what good looks like)
METRIC_ROWS = (
    ("column_shapes", "column shapes", "mean of 1 - KS (continuous) / 1 - TVD (categorical) per column; 1 = marginals match"),
    ("column_pair_trends", "column pair trends", "mean of correlation / contingency similarity per pair; 1 = relations match"),
    ("tstr_f1", "TSTR F1", "F1 on the holdout of classifiers trained on synthetic rows (mean of 4)"),
    ("trtr_f1", "TRTR F1", "the same classifiers trained on the real rows: the ceiling"),
    ("utility_ratio", "utility ratio", "TSTR F1 / TRTR F1; 1 = synthetic rows train as well as real ones"),
    ("tstr_accuracy", "TSTR accuracy", "accuracy on the holdout, trained on synthetic rows"),
    ("trtr_accuracy", "TRTR accuracy", "accuracy on the holdout, trained on real rows"),
    ("dcr_share", "DCR share", "synthetic rows closer to training rows than the holdout's 5th percentile DCR; ~0.05 = no copying, 1 = copies"),
    ("dcr_train_closer_share", "train-closer share", "synthetic rows nearer a training than a holdout row; fresh data: dcr_train_closer_expected"),
    ("dcr_train_closer_expected", "train-closer share, fresh data", "N_train / (N_train + N_holdout)"),
    ("nndr_median", "median NNDR", "d1 / d2 to the two nearest training rows; near 0 = singles out one record"),
    ("mia_auc", "membership-inference AUC", "0.5 = membership cannot be told from the synthetic rows; 1 = memorised"),
)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())
    _pyplot().close(fig)


def _file_name(index: int, column: str) -> str:
    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(column))[:60]}.png"


def _continuous_plot(column: str, real: np.ndarray, synthetic: np.ndarray, score: float, path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    present_real, present_syn = real[~np.isnan(real)], synthetic[~np.isnan(synthetic)]
    bins = np.histogram_bin_edges(present_real, bins=40) if present_real.size else 40
    real_heights, _, _ = ax.hist(present_real, bins=bins, density=True, alpha=0.55, label="real")
    # Synthetic values outside the real range land in the end bins rather than vanishing.
    shown = np.clip(present_syn, bins[0], bins[-1]) if present_real.size else present_syn
    ax.hist(shown, bins=bins, density=True, alpha=0.55, label="synthetic")
    filled = real_heights[real_heights > 0]
    if filled.size and real_heights.max() > 20 * np.median(filled):
        ax.set_yscale("log")  # one bin dwarfs the rest (e.g. capital-gain's zeros): show the tail
    missing = f"; missing {np.isnan(real).mean():.1%} real, {np.isnan(synthetic).mean():.1%} synthetic" \
        if np.isnan(real).any() or np.isnan(synthetic).any() else ""
    ax.set_title(f"{column}: 1 - KS = {score:.3f}{missing}", fontsize=9)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    _save(fig, path)


def _categorical_plot(column: str, real: pd.Series, synthetic: pd.Series, score: float, path: str) -> None:
    plt = _pyplot()
    p_real = real.value_counts(normalize=True)
    p_syn = synthetic.value_counts(normalize=True)
    top = [c for c in p_real.index if c != MISSING][:TOP_CATEGORIES]
    names = top + (["other"] if len(p_real.index.difference(top + [MISSING])) or
                   len(p_syn.index.difference(top + [MISSING])) else []) + \
        ([MISSING] if MISSING in p_real.index or MISSING in p_syn.index else [])

    def shares(p):
        rest = 1.0 - p.reindex(top, fill_value=0).sum() - p.get(MISSING, 0.0)
        return [p.get(c, 0.0) if c != "other" else rest for c in names]

    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(names) + 2), 3.4))
    ax.bar(x - 0.2, shares(p_real), width=0.4, label="real")
    ax.bar(x + 0.2, shares(p_syn), width=0.4, label="synthetic")
    ax.set_xticks(x, [str(n)[:18] for n in names], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{column}: 1 - TVD = {score:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, path)


def _pair_heat_map(columns, pairs: list[dict], path: str) -> None:
    plt = _pyplot()
    index = {c: i for i, c in enumerate(columns)}
    matrix = np.full((len(columns), len(columns)), np.nan)
    for pair in pairs:
        i, j = index[pair["columns"][0]], index[pair["columns"][1]]
        matrix[i, j] = matrix[j, i] = 1.0 - pair["score"]
    fig, ax = plt.subplots(figsize=(0.45 * len(columns) + 3, 0.45 * len(columns) + 2))
    image = ax.imshow(matrix, cmap="magma_r", vmin=0.0, vmax=max(0.05, float(np.nanmax(matrix)) if pairs else 0.05))
    ax.set_xticks(range(len(columns)), [str(c)[:18] for c in columns], rotation=90, fontsize=7)
    ax.set_yticks(range(len(columns)), [str(c)[:18] for c in columns], fontsize=7)
    fig.colorbar(image, ax=ax, label="1 - pair score (|Δ correlation| / 2 or contingency TVD)")
    ax.set_title("real vs synthetic: pairwise differences", fontsize=9)
    _save(fig, path)


def _dcr_plot(dcr: dict, path: str) -> None:
    plt = _pyplot()
    synthetic, holdout = np.asarray(dcr["synthetic"]), np.asarray(dcr["holdout"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    top = float(np.percentile(np.concatenate([synthetic, holdout]), 99.5))
    bins = np.linspace(0.0, max(top, 1e-6), 50)
    ax.hist(holdout, bins=bins, alpha=0.6, density=True, label="holdout (real, unseen)")
    ax.hist(synthetic, bins=bins, alpha=0.6, density=True, label="synthetic")
    ax.axvline(dcr["threshold"], color="k", linestyle="--", linewidth=1, label="holdout DCR threshold")
    ax.set_xlabel("distance to the closest training row (encoded space)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    _save(fig, path)


def markdown(result: dict) -> str:
    """The metrics table, per-column scores, warnings and the protocol, as Markdown."""
    protocol = result.get("protocol", {})
    lines = [f"# jsynth table evaluation: `{protocol.get('name', '')}`", ""]
    if result.get("warnings"):
        lines += ["**Warnings**", ""] + [f"- {w}" for w in result["warnings"]] + [""]
    lines += ["| metric | value | meaning |", "|---|---:|---|"]
    lines += [f"| {label} | {fmt(result.get(key))} | {meaning} |" for key, label, meaning in METRIC_ROWS
              if key in result]
    kinds = protocol.get("columns", {})
    lines += ["", "## Columns", "", "| column | kind | score | missing real | missing synthetic |", "|---|---|---:|---:|---:|"]
    missing = result.get("missing_rates", {})
    for column, score in result.get("column_shapes_by_column", {}).items():
        kind = "continuous" if column in kinds.get("continuous", []) else "categorical"
        rates = missing.get(column, {})
        lines.append(f"| {column} | {kind} | {score:.4f} | {fmt(rates.get('real', 0.0))} | {fmt(rates.get('synthetic', 0.0))} |")
    if result.get("utility_by_classifier"):
        lines += ["", "## Utility per classifier (test: holdout)", "", "| classifier | TSTR F1 | TRTR F1 | TSTR acc. | TRTR acc. |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {r['tstr_f1']:.4f} | {r['trtr_f1']:.4f} | {r['tstr_accuracy']:.4f} | {r['trtr_accuracy']:.4f} |"
                  for name, r in result["utility_by_classifier"].items()]
    worst = sorted(result.get("column_pair_trends_by_pair", []), key=lambda p: p["score"])[:10]
    if worst:
        lines += ["", "## Pairs that differ most", "", "| pair | score |", "|---|---:|"]
        lines += [f"| {p['columns'][0]} / {p['columns'][1]} | {p['score']:.4f} |" for p in worst]
    lines += ["", "## Protocol", "", "```json", json.dumps(protocol, indent=1, default=str), "```",
              f"seconds per stage: {json.dumps(result.get('seconds', {}))}", ""]
    return "\n".join(lines)


def write_table_report(report_dir: str, result: dict, tables, dcr: dict | None = None) -> str:
    """Writes the report folder (see the module docstring); returns its path.

    Args:
      report_dir: the folder (created).
      result: the evaluation result (the JSON's content).
      tables: the aligned tables the metrics saw (``frames.AlignedTables``).
      dcr: {"synthetic", "holdout", "threshold"} distances for the DCR histogram.
    """
    columns_dir = os.path.join(report_dir, "columns")
    os.makedirs(columns_dir, exist_ok=True)
    scores = result["column_shapes_by_column"]
    for index, column in enumerate(tables.columns):
        path = os.path.join(columns_dir, _file_name(index, column))
        if column in tables.continuous:
            _continuous_plot(column, tables.real[column].to_numpy(np.float64),
                             tables.synthetic[column].to_numpy(np.float64), scores[column], path)
        else:
            _categorical_plot(column, tables.real[column], tables.synthetic[column], scores[column], path)
    _pair_heat_map(tables.columns, result.get("column_pair_trends_by_pair", []), os.path.join(report_dir, "pair_trends.png"))
    if dcr is not None:
        _dcr_plot(dcr, os.path.join(report_dir, "dcr.png"))
    write_atomic(os.path.join(report_dir, "metrics.md"), markdown(result))
    return report_dir
