"""Precision, recall, density and coverage: fidelity and diversity from k-NN balls.

Every real (or fake) row i carries a ball B(x_i, NND_k(x_i)) whose radius is the distance to its
k-th nearest other row of the same set. With N real rows X, M fake rows Y and strict containment:

  precision = (1/M) sum_j 1[ exists i: Y_j in B(X_i, NND_k(X_i)) ]        (Kynkaanniemi et al. 2019)
  recall    = (1/N) sum_i 1[ exists j: X_i in B(Y_j, NND_k(Y_j)) ]
  density   = (1/(kM)) sum_j sum_i 1[ Y_j in B(X_i, NND_k(X_i)) ]        (Naeem et al. 2020)
  coverage  = (1/N) sum_i 1[ exists j: Y_j in B(X_i, NND_k(X_i)) ]

These are exactly the definitions of the `prdc` package (clovaai/generative-evaluation-prdc,
`compute_prdc`), including its strict `<`, but computed by the chunked kernels of
`jsynth.evaluate.neighbours`, so 100k x 100k sets never need an N x M matrix.

Reference values for identical distributions: density -> 1 and coverage -> 1 - 2^-k as N = M grows;
the prdc README reports precision 0.48, recall 0.47, density 1.06, coverage 0.97 for two 10k samples
of N(0, I_1000) with k = 5. The published protocol uses k = 3 for precision/recall and k = 5 for
density/coverage, hence the defaults below.
"""
from __future__ import annotations

import numpy as np

from jsynth.evaluate.neighbours import DEFAULT_CHUNK_SIZE, ball_counts, kth_neighbour_distances, nearest_distances


def precision_recall(real, fake, k: int = 3, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Args:
      real: (N, D) real features, N > k.
      fake: (M, D) generated features, M > k.
      k: neighbour that sets each ball's radius.
      chunk_size: rows per chunk in the neighbour kernels.

    Returns:
      {"precision": share of fake rows inside some real ball,
       "recall": share of real rows inside some fake ball}.
    """
    real_radii = kth_neighbour_distances(real, k, chunk_size=chunk_size)
    fake_radii = kth_neighbour_distances(fake, k, chunk_size=chunk_size)
    fake_in_real = ball_counts(fake, real, real_radii, chunk_size=chunk_size)
    real_in_fake = ball_counts(real, fake, fake_radii, chunk_size=chunk_size)
    return {"precision": float(np.mean(fake_in_real > 0)), "recall": float(np.mean(real_in_fake > 0))}


def density_coverage(real, fake, k: int = 5, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020); both use balls around real rows only.

    Args:
      real: (N, D) real features, N > k.
      fake: (M, D) generated features.
      k: neighbour that sets each real ball's radius.
      chunk_size: rows per chunk in the neighbour kernels.

    Returns:
      {"density": mean number of real balls holding a fake row, divided by k (unbounded; 1 when the
                  distributions match),
       "coverage": share of real balls holding at least one fake row}.
    """
    real_radii = kth_neighbour_distances(real, k, chunk_size=chunk_size)
    fake_in_real = ball_counts(fake, real, real_radii, chunk_size=chunk_size)
    # A real ball holds some fake row iff the nearest fake row is inside it.
    nearest_fake, _ = nearest_distances(real, fake, chunk_size=chunk_size)
    return {
        "density": float(fake_in_real.sum(dtype=np.int64) / (k * fake_in_real.shape[0])),
        "coverage": float(np.mean(nearest_fake < real_radii)),
    }


def prdc(real, fake, k: int = 5, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, float]:
    """All four with one k, sharing the radii: the prdc package's `compute_prdc(real, fake, k)`.

    Args:
      real: (N, D) real features, N > k.
      fake: (M, D) generated features, M > k.
      k: neighbour that sets every ball's radius.
      chunk_size: rows per chunk in the neighbour kernels.

    Returns:
      {"precision", "recall", "density", "coverage"} as floats.
    """
    real_radii = kth_neighbour_distances(real, k, chunk_size=chunk_size)
    fake_radii = kth_neighbour_distances(fake, k, chunk_size=chunk_size)
    fake_in_real = ball_counts(fake, real, real_radii, chunk_size=chunk_size)
    real_in_fake = ball_counts(real, fake, fake_radii, chunk_size=chunk_size)
    nearest_fake, _ = nearest_distances(real, fake, chunk_size=chunk_size)
    return {
        "precision": float(np.mean(fake_in_real > 0)),
        "recall": float(np.mean(real_in_fake > 0)),
        "density": float(fake_in_real.sum(dtype=np.int64) / (k * fake_in_real.shape[0])),
        "coverage": float(np.mean(nearest_fake < real_radii)),
    }
