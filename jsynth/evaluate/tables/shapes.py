"""Column shapes: how well each column's marginal distribution is reproduced, one score in [0, 1].

The definitions of SDMetrics' ``KSComplement`` and ``TVComplement`` (written from their
definitions, not imported):

* continuous column: 1 - KS, the two-sample Kolmogorov-Smirnov statistic (the largest gap between
  the two empirical CDFs; ``scipy.stats.ks_2samp``) of the present values; a column missing
  everywhere in one table and not in the other scores 0, missing everywhere in both 1;
* categorical column: 1 - TVD, the total variation distance 1/2 sum_c |p_real(c) - p_syn(c)|
  over every category of either table, missing values counted as a category of their own.

``column_shapes`` is the mean over columns: 1 = every marginal matches exactly.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - the KS statistic of the present (non-NaN) values of two continuous samples."""
    from scipy.stats import ks_2samp

    real = np.asarray(real, np.float64)
    synthetic = np.asarray(synthetic, np.float64)
    real, synthetic = real[~np.isnan(real)], synthetic[~np.isnan(synthetic)]
    if real.size == 0 or synthetic.size == 0:
        return float(real.size == synthetic.size)
    return float(1.0 - ks_2samp(real, synthetic).statistic)


def frequencies(values: pd.Series, categories: pd.Index) -> np.ndarray:
    """Relative frequency of each of ``categories`` among ``values``."""
    counts = values.value_counts().reindex(categories, fill_value=0).to_numpy(np.float64)
    return counts / max(counts.sum(), 1.0)


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - the total variation distance between the category frequencies of two samples."""
    categories = pd.Index(pd.unique(pd.concat([real, synthetic], ignore_index=True)))
    return float(1.0 - 0.5 * np.abs(frequencies(real, categories) - frequencies(synthetic, categories)).sum())


def column_shape_scores(real: pd.DataFrame, synthetic: pd.DataFrame, continuous) -> dict[str, float]:
    """{column: score} for every column of ``real`` (aligned frames, see ``frames.align``)."""
    return {column: ks_complement(real[column].to_numpy(), synthetic[column].to_numpy()) if column in continuous
            else tv_complement(real[column], synthetic[column]) for column in real.columns}
