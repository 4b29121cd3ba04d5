"""Column pair trends: how well the relation between every two columns is reproduced.

One score in [0, 1] per pair of columns, SDMetrics' definitions (written from them, not imported):

* two continuous columns: correlation similarity 1 - |r_real - r_syn| / 2, with r Pearson's
  correlation over the rows where both are present; a pair whose correlation is undefined in
  either table (a constant column) has no score and is left out of the mean;
* two categorical columns: contingency similarity 1 - TVD of the two joint distributions,
  1 - 1/2 sum_(a,b) |p_real(a, b) - p_syn(a, b)|, missing values a category of their own;
* one of each: the continuous column is cut into ``bins`` equal-width bins over the real table's
  range (values outside it fall in the end bins, missing values in a bin of their own), then
  contingency similarity.

``column_pair_trends`` is the mean over scored pairs: 1 = every pairwise relation matches.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd


def correlation_similarity(real_a, real_b, syn_a, syn_b) -> float:
    """1 - |r_real - r_syn| / 2 (NaN when a correlation is undefined)."""
    r_real, r_syn = _pearson(real_a, real_b), _pearson(syn_a, syn_b)
    return float(1.0 - abs(r_real - r_syn) / 2.0)


def _pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = ~(np.isnan(a) | np.isnan(b))
    if not both.any():
        return float("nan")
    a, b = a[both] - a[both].mean(), b[both] - b[both].mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale > 0 else float("nan")


def contingency_similarity(real_a, real_b, syn_a, syn_b) -> float:
    """1 - the total variation distance between the joint distributions of two categorical pairs.

    Args:
      real_a, real_b, syn_a, syn_b: category arrays (any hashable values), paired row by row.
    """
    a_codes, _ = pd.factorize(np.concatenate([np.asarray(real_a, object), np.asarray(syn_a, object)]))
    b_codes, b_uniques = pd.factorize(np.concatenate([np.asarray(real_b, object), np.asarray(syn_b, object)]))
    # Cells that occur, numbered densely: two 100,000-category columns must not make a 10^10 table.
    _, joint = np.unique(a_codes.astype(np.int64) * len(b_uniques) + b_codes, return_inverse=True)
    n_real, size = len(real_a), int(joint.max()) + 1
    p = np.bincount(joint[:n_real], minlength=size) / max(n_real, 1)
    q = np.bincount(joint[n_real:], minlength=size) / max(len(joint) - n_real, 1)
    return float(1.0 - 0.5 * np.abs(p - q).sum())


def bin_codes(real, synthetic, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width bin ids over the real range for both samples; missing values get id ``bins``."""
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    present = real[~np.isnan(real)]
    edges = np.histogram_bin_edges(present, bins=bins) if present.size else np.linspace(0.0, 1.0, bins + 1)

    def codes(x):
        ids = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
        return np.where(np.isnan(x), bins, ids)

    return codes(real), codes(synthetic)


def pair_trend_scores(real: pd.DataFrame, synthetic: pd.DataFrame, continuous, bins: int = 10) -> dict:
    """{(column_a, column_b): score} for every pair of columns of aligned frames (``frames.align``)."""
    scores = {}
    for a, b in itertools.combinations(real.columns, 2):
        a_cont, b_cont = a in continuous, b in continuous
        if a_cont and b_cont:
            scores[(a, b)] = correlation_similarity(real[a], real[b], synthetic[a], synthetic[b])
            continue
        ra, sa = bin_codes(real[a], synthetic[a], bins) if a_cont else (real[a].to_numpy(), synthetic[a].to_numpy())
        rb, sb = bin_codes(real[b], synthetic[b], bins) if b_cont else (real[b].to_numpy(), synthetic[b].to_numpy())
        scores[(a, b)] = contingency_similarity(ra, rb, sa, sb)
    return scores


def mean_score(scores: dict) -> float:
    """The mean of the defined scores (NaN when none is)."""
    values = np.asarray([v for v in scores.values() if np.isfinite(v)], np.float64)
    return float(values.mean()) if values.size else float("nan")
