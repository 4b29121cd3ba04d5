"""Variational autoencoders: an MLP VAE (784-400-20 style) and a convolutional VAE.

Architecture only. The decoder returns per-pixel logits; ``jsynth.losses`` turns them into a
Bernoulli or Gaussian likelihood, and ``decoder_mean`` into images in [0, 1]. The Gaussian
likelihood's scale is a learned scalar ``log_sigma`` held by the VAE itself, so that the
parameters are complete without the loss. Conditional variants feed a one-hot label to both the
encoder and the decoder (Sohn et al. 2015), so a sample can be asked for a class; with ``film``
the label also modulates every hidden layer of the decoder (``blocks.FiLM``). The convolutional
VAE can stack ``res_blocks`` normalisation-free residual blocks at each resolution.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jsynth.errors import InputError
from jsynth.models.blocks import FiLM, ResBlock
from jsynth.models.mlp import one_hot_or_none


def _with_code(h, code):
    return h if code is None else jnp.concatenate([h, code], axis=-1)


def _modulated(h, code, film, dtype):
    """``h`` FiLM-modulated by the label when the decoder asks for it (and is conditional)."""
    return FiLM(dtype)(h, code) if film and code is not None else h


def _res_blocks(h, count, dtype):
    for _ in range(count):
        h = ResBlock(dtype)(h)
    return h


class MLPEncoder(nn.Module):
    hidden: int
    latent_dim: int
    num_classes: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, labels=None):
        code = one_hot_or_none(labels, self.num_classes, self.dtype)
        h = _with_code(x.reshape((x.shape[0], -1)).astype(self.dtype), code)
        h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(h))
        mean = nn.Dense(self.latent_dim, dtype=self.dtype, name="mean")(h)
        log_var = nn.Dense(self.latent_dim, dtype=self.dtype, name="log_var")(h)
        return mean.astype(jnp.float32), log_var.astype(jnp.float32)


class MLPDecoder(nn.Module):
    hidden: int
    image_shape: tuple[int, int, int]
    num_classes: int = 0
    dtype: Any = jnp.float32
    film: bool = False  # the label also modulates the hidden layer (FiLM)

    @nn.compact
    def __call__(self, z, labels=None):
        code = one_hot_or_none(labels, self.num_classes, self.dtype)
        h = nn.Dense(self.hidden, dtype=self.dtype)(_with_code(z.astype(self.dtype), code))
        h = nn.relu(_modulated(h, code, self.film, self.dtype))
        h = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(h)
        return h.reshape((z.shape[0],) + tuple(self.image_shape)).astype(jnp.float32)


class ConvEncoder(nn.Module):
    width: int
    latent_dim: int
    num_classes: int = 0
    dtype: Any = jnp.float32
    res_blocks: int = 0  # residual blocks after each stride-2 convolution

    @nn.compact
    def __call__(self, x, labels=None):
        h = x.astype(self.dtype)
        code = one_hot_or_none(labels, self.num_classes, self.dtype)
        if code is not None:  # the label as constant extra channels
            h = jnp.concatenate([h, jnp.broadcast_to(code[:, None, None, :], h.shape[:3] + code.shape[-1:])], -1)
        h = nn.relu(nn.Conv(self.width, (4, 4), (2, 2), padding="SAME", dtype=self.dtype)(h))
        h = _res_blocks(h, self.res_blocks, self.dtype)
        h = nn.relu(nn.Conv(2 * self.width, (4, 4), (2, 2), padding="SAME", dtype=self.dtype)(h))
        h = _res_blocks(h, self.res_blocks, self.dtype)
        h = nn.relu(nn.Dense(256, dtype=self.dtype)(h.reshape((h.shape[0], -1))))
        mean = nn.Dense(self.latent_dim, dtype=self.dtype, name="mean")(h)
        log_var = nn.Dense(self.latent_dim, dtype=self.dtype, name="log_var")(h)
        return mean.astype(jnp.float32), log_var.astype(jnp.float32)


class ConvDecoder(nn.Module):
    width: int
    image_shape: tuple[int, int, int]
    num_classes: int = 0
    dtype: Any = jnp.float32
    film: bool = False   # the label also modulates every hidden layer (FiLM)
    res_blocks: int = 0  # residual blocks before each stride-2 transposed convolution

    @nn.compact
    def __call__(self, z, labels=None):
        height, width, channels = self.image_shape
        code = one_hot_or_none(labels, self.num_classes, self.dtype)
        h = nn.Dense(256, dtype=self.dtype)(_with_code(z.astype(self.dtype), code))
        h = nn.relu(_modulated(h, code, self.film, self.dtype))
        h = nn.Dense((height // 4) * (width // 4) * 2 * self.width, dtype=self.dtype)(h)
        h = nn.relu(_modulated(h, code, self.film, self.dtype))
        h = _res_blocks(h.reshape((-1, height // 4, width // 4, 2 * self.width)), self.res_blocks, self.dtype)
        h = nn.ConvTranspose(self.width, (4, 4), (2, 2), padding="SAME", dtype=self.dtype)(h)
        h = _res_blocks(nn.relu(_modulated(h, code, self.film, self.dtype)), self.res_blocks, self.dtype)
        h = nn.ConvTranspose(channels, (4, 4), (2, 2), padding="SAME", dtype=self.dtype)(h)
        return h.astype(jnp.float32)


class VAE(nn.Module):
    """Encoder + decoder. ``__call__`` reconstructs; ``decode`` maps latents to logits."""

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int

    def setup(self):
        # Gaussian likelihood's scale; unused (and harmless) for the Bernoulli likelihood.
        self.log_sigma = self.param("log_sigma", nn.initializers.zeros, ())

    def __call__(self, x, labels=None, noise=None):
        """Returns (logits, mean, log_var) with z = mean + sigma * eps (reparameterisation).

        eps is ``noise`` (standard normal, (B, latent_dim)) if given, else drawn from the
        ``"noise"`` RNG stream (``vae.apply(..., rngs={"noise": key})``, and ``vae.init({"params":
        k1, "noise": k2}, x)``). Training steps pass ``noise`` so that a step split over devices
        draws exactly the global batch's noise.
        """
        mean, log_var = self.encoder(x, labels)
        if noise is None:
            noise = jax.random.normal(self.make_rng("noise"), mean.shape)
        z = mean + jnp.exp(0.5 * log_var) * noise
        return self.decoder(z, labels), mean, log_var

    def encode(self, x, labels=None):
        """(mean, log_var) of q(z | x), each (B, latent_dim)."""
        return self.encoder(x, labels)

    def decode(self, z, labels=None):
        return self.decoder(z, labels)

    @property
    def num_classes(self) -> int:
        """Classes the decoder is conditioned on (0: unconditional)."""
        return self.decoder.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.decoder.image_shape)


def decoder_mean(logits):
    """Images in [0, 1] from decoder logits: the Bernoulli mean, and the Gaussian mean alike."""
    return jax.nn.sigmoid(logits)


def make_mlp_vae(image_shape, num_classes=0, hidden=400, latent_dim=20, dtype=jnp.float32, *,
                 film: bool = False) -> VAE:
    return VAE(MLPEncoder(hidden, latent_dim, num_classes, dtype),
               MLPDecoder(hidden, tuple(image_shape), num_classes, dtype, film=film), latent_dim)


def make_conv_vae(image_shape, num_classes=0, width=32, latent_dim=20, dtype=jnp.float32, *,
                  film: bool = False, res_blocks: int = 0) -> VAE:
    height, width_px, _ = image_shape
    if height % 4 or width_px % 4:
        raise InputError(f"convvae needs image sides divisible by 4, got {height}x{width_px}; use mlpvae")
    return VAE(ConvEncoder(width, latent_dim, num_classes, dtype, res_blocks=res_blocks),
               ConvDecoder(width, tuple(image_shape), num_classes, dtype, film=film, res_blocks=res_blocks),
               latent_dim)
