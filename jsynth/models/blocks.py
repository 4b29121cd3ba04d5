"""Building blocks of the VAEs: FiLM label modulation and normalisation-free residual blocks.

Architecture only. Both start as the identity (their last layer is zero-initialised), so adding
them to a network changes nothing at initialisation and trains stably without normalisation: no
batch statistics, nothing that depends on the batch or the device count.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class FiLM(nn.Module):
    """h * (1 + gamma(code)) + beta(code), per channel (Perez et al. 2018).

    ``code`` is the one-hot label (B, K). Modulating every hidden layer of the decoder, rather than
    concatenating the label to its input only, gives the label a path to the output that the
    latent cannot take over: the decoder cannot learn to ignore it.
    """

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h, code):
        channels = h.shape[-1]
        scale_shift = nn.Dense(2 * channels, dtype=self.dtype, kernel_init=nn.initializers.zeros)(code)
        gamma, beta = jnp.split(scale_shift, 2, axis=-1)
        shape = (h.shape[0],) + (1,) * (h.ndim - 2) + (channels,)  # broadcast over the spatial axes
        return h * (1.0 + gamma.reshape(shape)) + beta.reshape(shape)


class ResBlock(nn.Module):
    """x + Conv3x3(relu(Conv3x3(relu(x)))), same channels and size; no normalisation.

    The second convolution starts at zero (each block starts as the identity, as in SkipInit/
    Fixup), which is what lets a stack of them train without BatchNorm or GroupNorm.
    """

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(x.shape[-1], (3, 3), padding="SAME", dtype=self.dtype)(nn.relu(x))
        h = nn.Conv(x.shape[-1], (3, 3), padding="SAME", dtype=self.dtype,
                    kernel_init=nn.initializers.zeros)(nn.relu(h))
        return x + h
