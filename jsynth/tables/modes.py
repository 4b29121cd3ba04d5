"""Mode-specific normalisation's mixture fit: a variational Gaussian mixture per continuous column.

As in CTGAN (Xu et al. 2019), each continuous column gets scikit-learn's ``BayesianGaussianMixture``
with a Dirichlet-process prior (``weight_concentration_prior=0.001``, at most ``max_modes`` = 10
components); components whose weight is below 0.005 are dropped. What makes it fast:
  - it is fitted on a seeded subsample of at most ``fit_rows`` (default 5,000) present values of
    the column (CTGAN fits all rows: adult's 32,561): a 1-D mixture of at most 10 modes is pinned
    down by 5,000 points, and the fit's cost grows with the rows (adult's six columns, serially:
    median 1.50 s of CPU from 5,000 rows each, 2.11 s from 10,000, in
    benchmarks/results/tables-transform.jsonl);
  - ``covariance_type="diag"``: in one dimension the same model as CTGAN's "full" (the fitted
    weights, means and variances agreed to 1e-11 on adult's columns), without the per-component
    Cholesky factorisations that took a quarter of a "full" fit's time;
  - BLAS runs on one thread inside a fit (its matrices are tiny; spare BLAS threads spin-wait);
  - the columns are fitted in parallel worker processes (joblib) only for wide tables, when the
    subsamples add up to at least PARALLEL_ROWS values: starting the workers costs seconds.
Values are standardised before the fit (and the modes mapped back) so the fit behaves the same for
ages and for incomes of a million.

``cover`` then widens the standard deviation of a mode where needed so that every training value
lies within 4 standard deviations of some mode: the normalised value is clipped to [-1, 1], and
without this the rare values beyond every mode's reach (0.04-0.2 % of adult's capital-gain,
capital-loss and fnlwgt values; CTGAN clips them) could not be encoded and decoded back.
"""
from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

DEFAULT_FIT_ROWS = 5_000
# Fit in worker processes only from this many subsampled values in all (30 columns at 5,000): starting
# the workers (a Python with numpy and scikit-learn each) cost 9 s on this VM under load, more than
# adult's whole serial fit.
PARALLEL_ROWS = 150_000
WEIGHT_THRESHOLD = 0.005
CONCENTRATION_PRIOR = 0.001


@dataclasses.dataclass(frozen=True)
class Modes:
    """A column's mixture: the kept modes' means, standard deviations and (renormalised) weights,
    and the range of the values it was fitted on (decoding clips to it)."""

    means: tuple[float, ...]
    stds: tuple[float, ...]
    weights: tuple[float, ...]
    low: float
    high: float

    def to_json(self) -> dict:
        return {"means": list(self.means), "stds": list(self.stds), "weights": list(self.weights),
                "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: dict) -> "Modes":
        return cls(tuple(map(float, data["means"])), tuple(map(float, data["stds"])),
                   tuple(map(float, data["weights"])), float(data["low"]), float(data["high"]))


def fit_modes(values: np.ndarray, max_modes: int = 10, fit_rows: int = DEFAULT_FIT_ROWS,
              seed: int = 0) -> Modes:
    """Fits one column's mixture.

    Args:
      values: the column's present values (float64, no NaN), at least one.
      max_modes: the most mixture components.
      fit_rows: fit on a seeded subsample of at most this many values.
      seed: the subsample's and the fit's seed.
    """
    return _fit(*_subsample(values, fit_rows, seed), max_modes)


def fit_all_modes(columns: list[np.ndarray], max_modes: int = 10, fit_rows: int = DEFAULT_FIT_ROWS,
                  seed: int = 0, n_jobs: int | None = None) -> list[Modes]:
    """``fit_modes`` for several columns (column i seeded with ``seed * 1000 + i``), in parallel
    processes when there are several columns and cores: each fit is many small numpy operations
    that hold the GIL, so threads would not overlap."""
    # Subsample here so the workers are sent at most fit_rows values per column.
    work = [_subsample(values, fit_rows, seed * 1000 + i) for i, values in enumerate(columns)]
    if n_jobs is None:
        # Starting worker processes costs seconds: worth it only for wide tables.
        big = sum(len(args[0]) for args in work) >= PARALLEL_ROWS
        n_jobs = min(len(columns), os.cpu_count() or 1) if big else 1
    if n_jobs <= 1 or len(columns) <= 1:
        return [_fit(*args, max_modes) for args in work]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs)(delayed(_fit)(*args, max_modes) for args in work)


def _subsample(values: np.ndarray, fit_rows: int, seed: int):
    """(sample of at most fit_rows values, min, max of all values, the fit's seed)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    low, high = float(values.min()), float(values.max())
    if len(values) > fit_rows:
        values = rng.choice(values, fit_rows, replace=False)
    return values, low, high, int(rng.integers(2**31 - 1))


def _fit(values: np.ndarray, low: float, high: float, seed: int, max_modes: int) -> Modes:
    from sklearn.mixture import BayesianGaussianMixture  # heavy imports, only when fitting
    from threadpoolctl import threadpool_limits

    center, scale = float(values.mean()), float(values.std())
    distinct = np.unique(values)
    if scale == 0.0 or len(distinct) == 1:
        # A constant column: one mode; any positive std decodes every value back to the constant.
        spread = max(abs(low), 1.0) * 1e-3
        return Modes((float(distinct[0]),), (spread,), (1.0,), low, high)
    z = (values - center) / scale
    mixture = BayesianGaussianMixture(
        n_components=int(min(max_modes, len(distinct))),
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=CONCENTRATION_PRIOR, covariance_type="diag", n_init=1,
        random_state=seed)
    # One BLAS thread: the fit's matrices are tiny, and OpenBLAS's threads spin-wait for cores
    # that other work holds (measured on this 2-core VM under load: 20,000 rows per column took
    # 44 s of CPU for adult's six columns with 2 BLAS threads, 6.8 s with one).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # Not converging in max_iter is normal here and harmless: the modes are only a coordinate
        # system for the normalised values, not a density estimate anyone reads.
        warnings.simplefilter("ignore")
        mixture.fit(z.reshape(-1, 1))
    keep = mixture.weights_ > WEIGHT_THRESHOLD
    if not keep.any():
        keep = mixture.weights_ == mixture.weights_.max()
    weights = mixture.weights_[keep] / mixture.weights_[keep].sum()
    means = mixture.means_[keep, 0] * scale + center
    # A floor on the std so a mode fitted on one repeated value still divides safely.
    stds = np.maximum(np.sqrt(mixture.covariances_[keep].reshape(-1)) * scale, scale * 1e-6)
    order = np.argsort(means)  # modes in value order: a stable, readable layout
    return Modes(tuple(map(float, means[order])), tuple(map(float, stds[order])),
                 tuple(map(float, weights[order])), low, high)


def cover(modes: Modes, values: np.ndarray) -> Modes:
    """``modes`` with stds widened just enough that each of ``values`` lies within 4 stds of some
    mode (the nearest one in standard deviations is widened)."""
    values = np.asarray(values, dtype=np.float64)
    means, stds = np.asarray(modes.means), np.asarray(modes.stds).copy()
    reach = np.abs(values[:, None] - means) / (4 * stds)
    outside = reach.min(axis=1) > 1
    if not outside.any():
        return modes
    nearest = np.argmin(reach[outside], axis=1)
    distance = np.abs(values[outside] - means[nearest]) / 4
    for k in np.unique(nearest):
        # A hair more than needed, so the value maps strictly inside [-1, 1] after rounding.
        stds[k] = max(stds[k], float(distance[nearest == k].max()) * (1 + 1e-6))
    return dataclasses.replace(modes, stds=tuple(map(float, stds)))
