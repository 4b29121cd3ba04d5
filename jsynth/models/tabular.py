"""Networks for tables (architecture only): TVAE and CTGAN (Xu et al. 2019, "Modeling Tabular data
using Conditional GAN"), and the per-segment output activations both use.

A table is encoded (``jsynth.tables.TableTransform``) as a float matrix (N, D) whose columns form
segments: "tanh" segments (a continuous value normalised to [-1, 1]) and "softmax" segments (a
one-hot category, or the mode of a continuous value). ``layout`` below is that description as a
hashable tuple of ``(activation, start, width)``, so modules that carry it stay hashable.

Written from the paper (the reference implementation is BUSL-licensed and not used here).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Layout = tuple[tuple[str, int, int], ...]
GUMBEL_TAU = 0.2  # the paper's Gumbel-softmax temperature


def apply_activations(raw, layout: Layout, gumbel=None, tau: float = GUMBEL_TAU, hard: bool = False):
    """The network's raw output (B, D) turned into an encoded row, one segment at a time.

    tanh for "tanh" segments; for "softmax" segments a softmax of ``(raw + gumbel) / tau``
    (the Gumbel-softmax relaxation when ``gumbel`` holds Gumbel(0, 1) noise of raw's shape,
    a plain softmax when it is None), or its one-hot argmax when ``hard`` (a Gumbel-max draw).
    """
    parts = []
    for activation, start, width in layout:
        x = raw[:, start:start + width]
        if activation == "tanh":
            parts.append(jnp.tanh(x))
            continue
        if gumbel is not None:
            x = x + gumbel[:, start:start + width]
        if hard:
            parts.append(jax.nn.one_hot(jnp.argmax(x, axis=-1), width, dtype=raw.dtype))
        else:
            parts.append(jax.nn.softmax(x / tau, axis=-1))
    return jnp.concatenate(parts, axis=-1)


def tanh_columns(layout: Layout) -> tuple[int, ...]:
    """Positions of the "tanh" (continuous value) columns, in order."""
    return tuple(start for activation, start, width in layout if activation == "tanh")


def _with_onehot(x, labels, num_classes: int):
    if not num_classes:
        return x
    return jnp.concatenate([x, jax.nn.one_hot(labels, num_classes, dtype=x.dtype)], axis=-1)


class TVAE(nn.Module):
    """The TVAE: an MLP encoder to a Gaussian posterior, an MLP decoder to raw outputs (B, D), and
    one learned standard deviation per "tanh" column (the Gaussian likelihood's scale).

    ``num_classes`` > 0: a conditional VAE, the label's one-hot concatenated to the encoder's
    and the decoder's inputs.
    """

    layout: Layout
    hidden: Sequence[int] = (128, 128)
    latent_dim: int = 128
    num_classes: int = 0
    sigma_init: float = 0.1

    @property
    def output_dim(self) -> int:
        return sum(width for _, _, width in self.layout)

    def setup(self):
        self.encoder_layers = [nn.Dense(h) for h in self.hidden]
        self.mean_layer = nn.Dense(self.latent_dim)
        self.log_var_layer = nn.Dense(self.latent_dim)
        self.decoder_layers = [nn.Dense(h) for h in reversed(tuple(self.hidden))]
        self.output_layer = nn.Dense(self.output_dim)
        init = jnp.log(self.sigma_init)
        self.log_sigma = self.param("log_sigma", lambda key, shape: jnp.full(shape, init, jnp.float32),
                                    (len(tanh_columns(self.layout)),))

    def encode(self, x, labels=None):
        h = _with_onehot(x, labels, self.num_classes)
        for layer in self.encoder_layers:
            h = nn.relu(layer(h))
        return self.mean_layer(h), self.log_var_layer(h)

    def decode(self, z, labels=None):
        h = _with_onehot(z, labels, self.num_classes)
        for layer in self.decoder_layers:
            h = nn.relu(layer(h))
        return self.output_layer(h)

    def __call__(self, x, labels, noise):
        """(raw outputs, mean, log_var) for rows x and standard normal ``noise`` (B, latent_dim)."""
        mean, log_var = self.encode(x, labels)
        z = mean + jnp.exp(0.5 * log_var) * noise
        return self.decode(z, labels), mean, log_var


class ResidualConcat(nn.Module):
    """CTGAN's generator block: Linear-BatchNorm-ReLU, its output concatenated to its input."""

    width: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.Dense(self.width)(x)
        # momentum 0.9 / eps 1e-5: the usual BatchNorm1d running-average and epsilon.
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         axis_name=self.axis_name if train else None)(h)
        return jnp.concatenate([nn.relu(h), x], axis=-1)


class CTGANGenerator(nn.Module):
    """Noise and the conditional vector in, raw outputs (B, D) out (activations applied by the caller)."""

    output_dim: int
    hidden: Sequence[int] = (256, 256)
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z, cond, train: bool = True):
        h = z if cond is None or cond.shape[-1] == 0 else jnp.concatenate([z, cond], axis=-1)
        for width in self.hidden:
            h = ResidualConcat(width, self.axis_name)(h, train)
        return nn.Dense(self.output_dim)(h)


class CTGANDiscriminator(nn.Module):
    """The PacGAN critic: ``pac`` rows (each with its conditional vector) judged together.

    Input (B, D) rows and (B, C) conditions with B a multiple of ``pac``; output (B / pac,) scores.
    """

    hidden: Sequence[int] = (256, 256)
    pac: int = 10
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, cond, train: bool = True):
        h = x if cond is None or cond.shape[-1] == 0 else jnp.concatenate([x, cond], axis=-1)
        h = h.reshape((h.shape[0] // self.pac, self.pac * h.shape[-1]))
        for width in self.hidden:
            h = nn.leaky_relu(nn.Dense(width)(h), 0.2)
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.Dense(1)(h)[:, 0]
