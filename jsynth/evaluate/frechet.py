"""Frechet distance between Gaussians fitted to feature sets (FID when the features are Inception's).

  FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

The trace of the matrix square root is computed as the sum of the square roots of the eigenvalues
of sqrt(S1) S2 sqrt(S1). That matrix is similar to S1 S2 (S1 S2 = sqrt(S1) [sqrt(S1) S2 sqrt(S1)]
sqrt(S1)^-1 for invertible S1, and by continuity otherwise), so the eigenvalues are the same, but it
is symmetric positive semi-definite: `eigh` returns real eigenvalues that are >= 0 up to round-off,
which we clip. The usual `scipy.linalg.sqrtm(S1 @ S2)` factors a non-symmetric matrix by Schur
decomposition; for rank-deficient covariances (fewer samples than dimensions, dead features) it
returns complex results and inaccurate roots, which FID code then patches with an eps * I offset
and by dropping imaginary parts. (What remains is the square root's own sensitivity at 0: each null
direction of a singular covariance adds about sqrt(1e-16) * ||S|| to the trace term.) Everything here is float64 numpy: the statistics of 2048-d features
lose most of their digits in float32.

FD is biased upwards by roughly c / N for N samples, so FIDs from different N do not compare.
`frechet_distance_infinity` removes that bias by extrapolating to N = infinity (Chong & Forsyth 2020).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_CHUNK_SIZE = 4096


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; round-off negatives become 0."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
      mu1, mu2: (D,) means.
      sigma1, sigma2: (D, D) symmetric positive semi-definite covariances.

    Returns:
      The distance as a Python float (>= 0 up to round-off of order 1e-12 * trace).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shapes do not match: {mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    product = root1 @ sigma2 @ root1
    # Symmetrise: the product is symmetric in exact arithmetic, and eigvalsh reads one triangle only.
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def feature_statistics(features, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof=1, as np.cov and every FID code) in float64.

    Rows are read `chunk_size` at a time, so only one float64 chunk exists at once, and chunks are
    merged with Chan et al.'s pairwise update of (count, mean, centred sum of squares), which does
    not suffer the cancellation of sum(x x^T) - N mu mu^T when features sit far from 0.

    Args:
      features: (N, D) array, N >= 2.
      chunk_size: rows per chunk.

    Returns:
      (mu (D,), sigma (D, D)) float64.
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {features.shape}")
    d = features.shape[1]
    count, mean, centred_sq = 0, np.zeros(d), np.zeros((d, d))
    for start in range(0, features.shape[0], chunk_size):
        chunk = features[start:start + chunk_size].astype(np.float64)
        n = chunk.shape[0]
        chunk_mean = chunk.mean(axis=0)
        centred = chunk - chunk_mean
        delta = chunk_mean - mean
        total = count + n
        centred_sq += centred.T @ centred + np.outer(delta, delta) * (count * n / total)
        mean = mean + delta * (n / total)
        count = total
    return mean, centred_sq / (count - 1)


def frechet_distance_from_features(features1, features2, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    Args:
      features1: (N1, D) features.
      features2: (N2, D) features.
      chunk_size: rows per chunk when accumulating statistics.

    Returns:
      The distance as a float.
    """
    return frechet_distance(*feature_statistics(features1, chunk_size=chunk_size),
                            *feature_statistics(features2, chunk_size=chunk_size))


def frechet_distance_infinity(real_features, fake_features, sizes: Sequence[int] | None = None,
                              seed: int = 0) -> float:
    """FD_inf: the Frechet distance extrapolated to infinitely many fake samples (Chong & Forsyth 2020).

    FD computed from N fake samples is, to first order, FD_inf + c / N. Following the paper's
    protocol, FD is computed for random fake subsets of several sizes against the statistics of all
    real features, a line is fitted to FD against 1 / N, and its intercept is returned. The bias from
    the finite real set is not removed (it is shared by every model scored against the same reference).

    Args:
      real_features: (N_real, D) features; their statistics are computed once.
      fake_features: (N_fake, D) features to subsample.
      sizes: subset sizes, at least two distinct values, each <= N_fake. Default: 15 sizes evenly
        spaced from N_fake / 10 to N_fake, the paper's 5k..50k range scaled to the given set.
      seed: seeds the random subsets, so the result is reproducible.

    Returns:
      The intercept of the fit, a float. It can be slightly negative when the true distance is ~0.
    """
    fake_features = np.asarray(fake_features)
    n_fake = fake_features.shape[0]
    if sizes is None:
        sizes = np.linspace(max(n_fake // 10, 2), n_fake, 15).astype(int)
    sizes = np.asarray(sizes, dtype=int)
    if len(np.unique(sizes)) < 2 or sizes.min() < 2 or sizes.max() > n_fake:
        raise ValueError(f"need >= 2 distinct sizes in [2, {n_fake}], got {sizes.tolist()}")
    mu_real, sigma_real = feature_statistics(real_features)
    rng = np.random.default_rng(seed)
    fds = []
    for n in sizes:
        subset = fake_features[rng.choice(n_fake, size=n, replace=False)]
        fds.append(frechet_distance(mu_real, sigma_real, *feature_statistics(subset)))
    _, intercept = np.polyfit(1.0 / sizes, np.asarray(fds), deg=1)
    return float(intercept)
