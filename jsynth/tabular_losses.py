"""Losses of the table models (TVAE, CTGAN) as pure functions, written from Xu et al. (2019).

``layout`` is ``jsynth.models.tabular.Layout``: ``(activation, start, width)`` per segment of an
encoded row. ``spans`` are the discrete columns' ``(start, width)`` (what CTGAN conditions on).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jsynth.models.tabular import Layout

SIGMA_MIN, SIGMA_MAX = 0.01, 1.0  # the range the TVAE's learned standard deviations are kept in


def tvae_sigmas(log_sigma):
    """The TVAE's per-column standard deviations, clipped to [0.01, 1] (the paper keeps them there)."""
    return jnp.clip(jnp.exp(log_sigma), SIGMA_MIN, SIGMA_MAX)


def tvae_reconstruction(raw, x, log_sigma, layout: Layout):
    """Per-row negative log-likelihood of rows ``x`` (B, D) under the decoder's raw outputs.

    "tanh" columns: Gaussian with mean tanh(raw) and the learned sigma, (x - mu)^2 / (2 sigma^2) +
    log sigma (the constant 0.5 log 2 pi left out); "softmax" segments: cross-entropy of the
    one-hot target against softmax(raw). Returns (gaussian (B,), categorical (B,)).
    """
    sigmas = tvae_sigmas(log_sigma)
    gaussian = jnp.zeros(raw.shape[:1], raw.dtype)
    categorical = jnp.zeros(raw.shape[:1], raw.dtype)
    t = 0
    for activation, start, width in layout:
        if activation == "tanh":
            sigma = sigmas[t]
            t += 1
            mu = jnp.tanh(raw[:, start])
            gaussian = gaussian + (x[:, start] - mu) ** 2 / (2.0 * sigma ** 2) + jnp.log(sigma)
        else:
            log_p = jax.nn.log_softmax(raw[:, start:start + width], axis=-1)
            categorical = categorical - jnp.sum(x[:, start:start + width] * log_p, axis=-1)
    return gaussian, categorical


def tvae_loss(raw, x, mean, log_var, log_sigma, layout: Layout, reconstruction_weight: float = 2.0,
              kl_weight: float = 1.0):
    """The TVAE's objective: ``reconstruction_weight`` x the reconstruction NLL + ``kl_weight`` x
    KL(q(z|x) || N(0, I)), each summed over columns and averaged over rows. Returns (loss, terms).

    The reconstruction weight 2 is the reference tool's default (its ``loss_factor``)."""
    gaussian, categorical = tvae_reconstruction(raw, x, log_sigma, layout)
    kl = -0.5 * jnp.sum(1.0 + log_var - mean ** 2 - jnp.exp(log_var), axis=-1)
    reconstruction = jnp.mean(gaussian + categorical)
    loss = reconstruction_weight * reconstruction + kl_weight * jnp.mean(kl)
    return loss, {"reconstruction": reconstruction, "gaussian_nll": jnp.mean(gaussian),
                  "cross_entropy": jnp.mean(categorical), "kl": jnp.mean(kl)}


def wasserstein_critic_loss(real_scores, fake_scores):
    """The WGAN critic's loss: E[D(fake)] - E[D(real)]."""
    return jnp.mean(fake_scores) - jnp.mean(real_scores)


def packed_gradient_penalty(critic, real, fake, alpha, pac: int):
    """WGAN-GP's penalty on PacGAN inputs: E[(||grad critic(x_hat)|| - 1)^2] over packs.

    ``real``/``fake`` (B, F) are what the critic takes (rows and their conditions); ``alpha``
    (B / pac,) one interpolation weight per pack, shared by its rows; the gradient's norm is taken
    over each pack's ``pac * F`` inputs, as the packed critic sees them.
    """
    weights = jnp.repeat(alpha, pac)[:, None]
    x_hat = weights * real + (1.0 - weights) * fake
    grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
    norms = jnp.sqrt(jnp.sum(grads.reshape((-1, pac * grads.shape[-1])) ** 2, axis=-1) + 1e-12)
    return jnp.mean((norms - 1.0) ** 2)


def conditional_cross_entropy(raw, cond_index, spans):
    """CTGAN's generator penalty: mean over rows of the cross-entropy between the generated
    discrete column that row was conditioned on and the category it was conditioned on.

    ``cond_index`` (B,) indexes the concatenation of every discrete span's categories.
    """
    log_p = jnp.concatenate([jax.nn.log_softmax(raw[:, start:start + width], axis=-1)
                             for start, width in spans], axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_p, cond_index[:, None], axis=-1))


def generator_critic_loss(fake_scores):
    """The WGAN generator's loss: -E[D(fake)]."""
    return -jnp.mean(fake_scores)
