"""MLP GAN networks: the classic latent-100 -> 128 -> 784 tanh generator and its discriminator.

Architecture only: no losses, optimisers or devices. Images are NHWC; the MLPs flatten them.
Class-conditional variants take integer labels and concatenate a one-hot code (Mirza & Osindero 2014);
the discriminator can add a projection term instead (``conditioning="projection"``).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jsynth.models.conditioning import check_conditioning, projection
from jsynth.models.spectral import spectrally_normalized


def one_hot_or_none(labels, num_classes: int, dtype) -> jnp.ndarray | None:
    """One-hot codes for conditional models, ``None`` for unconditional ones (num_classes == 0)."""
    if num_classes == 0:
        return None
    if labels is None:
        raise ValueError(f"this model is class-conditional ({num_classes} classes): pass labels")
    return nn.one_hot(labels, num_classes, dtype=dtype)


def check_latents(z, latent_dim: int) -> None:
    """Raises ValueError unless ``z`` is (B, latent_dim): a generator is built for one width of z."""
    if z.ndim != 2 or z.shape[-1] != latent_dim:
        raise ValueError(f"this generator takes latents of shape (batch, {latent_dim}), got {tuple(z.shape)}; "
                         "build it with latent_dim=... to match")


class MLPGenerator(nn.Module):
    """z (B, latent_dim) [+ labels] -> images (B, H, W, C) in [-1, 1]."""

    image_shape: tuple[int, int, int]
    hidden: int = 128
    num_classes: int = 0
    dtype: Any = jnp.float32
    latent_dim: int = 100  # the width of z: what samplers and training steps draw

    @nn.compact
    def __call__(self, z, labels=None, train: bool = False):
        del train  # no BatchNorm/dropout: same function in both modes
        check_latents(z, self.latent_dim)
        h = z.astype(self.dtype)
        code = one_hot_or_none(labels, self.num_classes, self.dtype)
        if code is not None:
            h = jnp.concatenate([h, code], axis=-1)
        h = nn.leaky_relu(nn.Dense(self.hidden, dtype=self.dtype)(h), 0.2)
        out = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(h)
        return jnp.tanh(out).reshape((z.shape[0],) + tuple(self.image_shape))


class MLPDiscriminator(nn.Module):
    """images (B, H, W, C) [+ labels] -> real/fake logits (B,).

    ``conditioning``: "concat" (default) appends the one-hot label to the flattened image,
    "projection" adds <embed(y), h> to the logit, h the hidden layer (``jsynth.models.conditioning``).
    ``spectral_norm``: every weight matrix spectrally normalised (``jsynth.models.spectral``).
    """

    hidden: int = 128
    num_classes: int = 0
    dropout: float = 0.0
    dtype: Any = jnp.float32
    conditioning: str = "concat"
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x, labels=None, train: bool = False):
        check_conditioning(self.conditioning)
        wrap = functools.partial(spectrally_normalized, enabled=self.spectral_norm, train=train)
        h = x.reshape((x.shape[0], -1)).astype(self.dtype)
        if self.conditioning == "concat":
            code = one_hot_or_none(labels, self.num_classes, self.dtype)
            if code is not None:
                h = jnp.concatenate([h, code], axis=-1)
        h = nn.leaky_relu(wrap(nn.Dense(self.hidden, dtype=self.dtype))(h), 0.2)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        logit = wrap(nn.Dense(1, dtype=self.dtype))(h)[:, 0]
        if self.conditioning == "projection" and self.num_classes:
            logit = logit + projection(h, labels, self.num_classes, self.dtype, wrap)
        return logit.astype(jnp.float32)
