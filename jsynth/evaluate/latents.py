"""Active latent units of a VAE (Burda et al. 2016, section 5.2): a pure measure and a driver.

Unit j is active when A_j = Cov_x(E_q[z_j | x]) > 0.01: its posterior mean moves with the input.
An inactive unit's posterior equals the prior whatever the image (its KL is ~0), so the decoder
gets nothing from it; few active units is the "posterior collapse" that KL warm-up and free bits
are for. The means come from the encoder alone (one pass, no sampling), so the count is cheap.
"""
from __future__ import annotations

import functools
import math

import jax
import numpy as np

from jsynth import parallel
from jsynth.evaluate.chunks import map_chunks

THRESHOLD = 0.01
ROWS = 256


def active_units(means: np.ndarray, threshold: float = THRESHOLD) -> tuple[int, np.ndarray]:
    """(number of active units, A_j per unit) from posterior means (N, D) of N images.

    A_j is the variance over the images of the posterior mean of unit j (float64, 1/N).
    """
    variances = np.var(np.asarray(means, np.float64), axis=0)
    return int(np.sum(variances > threshold)), variances


@functools.lru_cache(maxsize=8)
def _compiled_encode(posterior, mesh):
    rows = parallel.batch_sharding(mesh)
    return jax.jit(lambda variables, x, labels: posterior.encode(variables, x, labels)[0],
                   in_shardings=(parallel.replicated(mesh), rows, rows), out_shardings=rows)


def posterior_means(posterior, variables, images: np.ndarray, labels: np.ndarray | None = None, *,
                    rows: int = ROWS, mesh=None) -> np.ndarray:
    """E_q[z | x] (N, D) of every image (labels for conditional models), in chunks of ``rows``."""
    mesh = mesh or parallel.data_mesh(math.gcd(rows, jax.local_device_count()))
    encode = _compiled_encode(posterior, mesh)
    variables = parallel.replicate(mesh, variables)
    images = np.asarray(images, np.float32)
    labels = np.zeros(len(images), np.int32) if labels is None else np.asarray(labels, np.int32)
    return map_chunks(lambda index, _: encode(variables, images[index], labels[index]),
                      np.arange(len(images)), rows)


def count_active_units(posterior, variables, images, labels=None, *, threshold: float = THRESHOLD,
                       rows: int = ROWS, mesh=None) -> int:
    """The number of active units of a trained VAE over ``images`` (e.g. the held-out set)."""
    means = posterior_means(posterior, variables, images, labels, rows=rows, mesh=mesh)
    return active_units(means, threshold)[0]
