"""Importance-sampled log-likelihood of a VAE (Burda et al. 2016, Appendix): a pure core and a driver.

For each image x, with z_i ~ q(z|x), i = 1..k:

    log p(x) ~= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)                  (= the IWAE bound L_k)

a lower bound in expectation that tightens to log p(x) as k grows; k = 5000 is the literature's
protocol (the IWAE paper's 86.76 nats on MNIST). ``jsynth eval`` reports the mean of -log p(x) over
held-out images as ``nll_nats``, for Bernoulli decoders on binarised images: the test images are
binarised once, x ~ Bernoulli(pixel) with a fixed seed (``binarize_once``), the protocol of the
stochastically binarised MNIST the published numbers use, and the distribution a model trained
with ``binarize=true`` learnt from.

The noise of (image n, sample i) is drawn from ``fold_in(fold_in(key, n), i)``: an estimate depends
on the seed alone, not on how images or samples are chunked or on the device count. On the device
the samples go through ``samples_per_step`` at a time (``lax.map``), so memory is bounded by
``rows x samples_per_step`` decodes whatever k is.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jsynth import parallel
from jsynth.evaluate.chunks import map_chunks
from jsynth.families.vae import importance_terms

DEFAULT_SAMPLES = 5000
ROWS = 16                # images per compiled call (padded), split over the mesh
SAMPLES_PER_STEP = 250   # importance samples per image and device step


def sample_noise(key, image_index, sample_index, latent_dim: int):
    """(rows, samples, latent_dim) standard normals: row r, sample s from (image_index[r], sample_index[s])."""
    def per_image(n):
        image_key = jax.random.fold_in(key, n)
        return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(image_key, i), (latent_dim,)))(sample_index)

    return jax.vmap(per_image)(image_index)


def log_marginal(posterior, variables, x, labels, key, first_row, *, num_samples: int,
                 samples_per_step: int = SAMPLES_PER_STEP):
    """Importance-sampled estimates of log p(x) per row (pure; jit with the keyword args static).

    Args:
      posterior: ``encode`` and ``log_likelihood`` (``jsynth.families.HasPosterior.posterior``).
      variables: the model's variables.
      x: (rows, H, W, C) images; labels: (rows,) int (ignored by unconditional models).
      key: the estimate's key; first_row: the index of row 0 among all images (its noise).
      num_samples: k.
      samples_per_step: samples per image decoded together (the last step's extra ones are masked).

    Returns:
      (rows,) log (1/k) sum_i exp(log w_i), log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x).
    """
    encoded = posterior.encode(variables, x, labels)
    image_index = first_row + jnp.arange(x.shape[0])
    num_steps = -(-num_samples // samples_per_step)

    def step(s):
        sample_index = s * samples_per_step + jnp.arange(samples_per_step)
        eps = sample_noise(key, image_index, sample_index, posterior.latent_dim)
        log_lik, log_prior, log_q = importance_terms(posterior, variables, x, labels, eps, encoded)
        return jnp.where(sample_index < num_samples, log_lik + log_prior - log_q, -jnp.inf)

    log_w = jax.lax.map(step, jnp.arange(num_steps))              # (steps, rows, samples_per_step)
    log_w = jnp.moveaxis(log_w, 0, 1).reshape((x.shape[0], -1))
    # losses.iwae_bound with the masked samples left out of the count.
    return jax.nn.logsumexp(log_w, axis=-1) - math.log(num_samples)


@functools.lru_cache(maxsize=8)
def _compiled(posterior, num_samples: int, samples_per_step: int, mesh):
    rep, rows = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    fn = functools.partial(log_marginal, posterior, num_samples=num_samples, samples_per_step=samples_per_step)
    return jax.jit(fn, in_shardings=(rep, rows, rows, rep, rep), out_shardings=rows)


def estimate_log_marginal(posterior, variables, images: np.ndarray, labels: np.ndarray | None = None, *,
                          num_samples: int = DEFAULT_SAMPLES, seed: int = 0, rows: int = ROWS,
                          samples_per_step: int = SAMPLES_PER_STEP, mesh=None) -> np.ndarray:
    """log p(x) of every image, importance-sampled with ``num_samples`` samples (the driver).

    Args:
      posterior, variables: the model (``family.posterior``, ``family.sample_variables(state)``).
      images: (N, H, W, C) float32 in the model's range (binarised for a Bernoulli decoder).
      labels: (N,) int class labels for conditional models, else None.
      num_samples: k; seed: the noise's seed.
      rows: images per compiled call; samples_per_step: see ``log_marginal``.
      mesh: devices to split each call's images over (default: as many as divide ``rows``).

    Returns:
      (N,) float64 estimates of log p(x) in nats.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    mesh = mesh or parallel.data_mesh(math.gcd(rows, jax.local_device_count()))
    fn = _compiled(posterior, num_samples, min(samples_per_step, num_samples), mesh)
    variables = parallel.replicate(mesh, variables)
    key = jax.random.key(seed)
    images = np.asarray(images, np.float32)
    labels = np.zeros(len(images), np.int32) if labels is None else np.asarray(labels, np.int32)

    def chunk_fn(index, start):  # the padded rows of the last chunk repeat image 0; cut off after
        return fn(variables, images[index], labels[index], key, np.int32(start))

    return map_chunks(chunk_fn, np.arange(len(images)), rows).astype(np.float64)


def binarize_once(images: np.ndarray, seed: int) -> np.ndarray:
    """x ~ Bernoulli(pixel) once, from a fixed seed: the binarised held-out set ``nll_nats`` is on."""
    uniform = np.random.default_rng([seed, 0x4E4C4C]).random(images.shape, dtype=np.float32)
    return (uniform < np.asarray(images, np.float32)).astype(np.float32)
