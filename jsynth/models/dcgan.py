"""DCGAN generators and discriminator for 8x8, 16x16, 28x28, 32x32 and 64x64 images, grey or RGB.

Two generator layouts, both exactly as defined in ``docs/architectures.md``:

* 28x28 ("TensorFlow tutorial" layout, ``dcgan28`` at width 64): Dense -> BatchNorm -> 7x7x(4w)
  -> ConvTranspose(2w, 5x5, stride 1) -> ConvTranspose(w, 5x5, stride 2) -> ConvTranspose(C, 5x5,
  stride 2) -> tanh, LeakyReLU(0.2) and BatchNorm between, no biases.
* powers of two ("pytorch/examples" layout, ``dcgan64`` at width 64): z as 1x1xlatent ->
  ConvTranspose(k4, VALID) to 4x4 -> stride-2 k4 ConvTransposes halving the channels -> C -> tanh,
  BatchNorm + ReLU between, no biases. 8x8 has one upsampling, 64x64 has four.

Class-conditional generators concatenate a one-hot code to z; the conditional discriminator adds a
projection term <embed(y), features> to its logit (Miyato & Koyama 2018), or takes the one-hot
code as input channels (``conditioning="concat"``).
BatchNorm momentum/epsilon follow PyTorch (0.1 / 1e-5), so running statistics mean the same thing.

``upsample`` chooses how the generator's transposed convolutions are computed, not what they
compute: ``"subpixel"`` (default) runs each as sub-pixel phases (``jsynth.models.subpixel``:
no multiplications by inserted zeros, matrix products that XLA:CPU runs fast), ``"dilated"``
as ``flax.linen.ConvTranspose`` (lax.conv_transpose). Both hold the same parameters under the
same names (``ConvTranspose_0``, ...), so checkpoints are interchangeable; outputs agree to
float tolerance.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jsynth.errors import InputError
from jsynth.models.conditioning import check_conditioning, projection
from jsynth.models.mlp import check_latents, one_hot_or_none
from jsynth.models.spectral import spectrally_normalized
from jsynth.models.subpixel import UPSAMPLE_MODES, SubPixelConvTranspose
from jsynth.models.winograd import WinogradConv

BN_MOMENTUM = 0.9  # flax's momentum is 1 - PyTorch's
BN_EPSILON = 1e-5
SUPPORTED_SIZES = (8, 16, 28, 32, 64)
DOWNSAMPLE_MODES = ("winograd", "conv")


def check_image_shape(image_shape) -> None:
    """Raises ValueError unless the DCGAN layouts cover this (H, W, C)."""
    h, w, c = image_shape
    if h != w or h not in SUPPORTED_SIZES or c not in (1, 3):
        raise InputError(
            f"DCGAN supports square images of size {SUPPORTED_SIZES} with 1 or 3 channels, got "
            f"{h}x{w}x{c}; resize the data (folder: data takes --set image_size=N) or use mlpgan")


def _upsamplings(size: int) -> int:
    return int(math.log2(size // 4))


class DCGANGenerator(nn.Module):
    """z (B, latent) [+ labels] -> images (B, H, W, C) in [-1, 1]."""

    image_shape: tuple[int, int, int]
    width: int = 64
    num_classes: int = 0
    axis_name: str | None = None  # BatchNorm statistics averaged over this axis under shard_map/pmap
    dtype: Any = jnp.float32
    upsample: str = "subpixel"  # "subpixel" | "dilated": same function and parameters, see above
    # Inference with fixed weights only: Winograd layers read kernels transformed ahead
    # (``jsynth.families.with_transformed_kernels`` makes such a generator and its variables).
    kernels_ahead: bool = False
    latent_dim: int = 100  # the width of z: what samplers and training steps draw

    def _norm(self, train: bool):
        return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                            axis_name=self.axis_name, dtype=self.dtype)

    def _conv_transpose(self, index: int, features: int, kernel: int, stride: int, padding: str):
        """The ``index``-th transposed convolution, named as flax would auto-name a ConvTranspose."""
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        layer = (functools.partial(SubPixelConvTranspose, kernels_ahead=self.kernels_ahead)
                 if self.upsample == "subpixel" else nn.ConvTranspose)
        return layer(features, (kernel, kernel), (stride, stride), padding=padding, use_bias=False,
                     dtype=self.dtype, name=f"ConvTranspose_{index}")

    @nn.compact
    def __call__(self, z, labels=None, train: bool = False):
        check_image_shape(self.image_shape)
        check_latents(z, self.latent_dim)
        size, _, channels = self.image_shape
        h = z.astype(self.dtype)
        code = one_hot_or_none(labels, self.num_classes, self.dtype)
        if code is not None:
            h = jnp.concatenate([h, code], axis=-1)
        w = self.width
        if size == 28:
            h = nn.Dense(7 * 7 * 4 * w, use_bias=False, dtype=self.dtype)(h)
            h = nn.leaky_relu(self._norm(train)(h), 0.2).reshape((-1, 7, 7, 4 * w))
            for index, (features, stride) in enumerate(((2 * w, 1), (w, 2))):
                h = self._conv_transpose(index, features, 5, stride, "SAME")(h)
                h = nn.leaky_relu(self._norm(train)(h), 0.2)
            h = self._conv_transpose(2, channels, 5, 2, "SAME")(h)
            return jnp.tanh(h)
        n = _upsamplings(size)
        features = w * 2 ** (n - 1)
        h = h.reshape((h.shape[0], 1, 1, h.shape[-1]))
        h = self._conv_transpose(0, features, 4, 1, "VALID")(h)
        h = nn.relu(self._norm(train)(h))
        for index in range(1, n):
            features //= 2
            h = self._conv_transpose(index, features, 4, 2, "SAME")(h)
            h = nn.relu(self._norm(train)(h))
        h = self._conv_transpose(n, channels, 4, 2, "SAME")(h)
        return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
    """images (B, H, W, C) [+ labels] -> logits (B,).

    Strided convolutions (5x5 for 28x28, 4x4 for powers of two) doubling the channels from
    ``width`` until the map is 7x7 or 4x4, LeakyReLU(0.2) and dropout, then one Dense logit.
    At 28x28, width 64 and dropout 0.3 it is ``dcgan28-disc`` exactly. No BatchNorm: real and
    fake batches pass separately, and batch statistics would leak between them.

    ``downsample="winograd"`` (default) computes the convolution that outputs a 7x7 or 8x8 map
    by ``jsynth.models.winograd.WinogradConv`` (its gradients are matrix products: the training
    step is faster), ``"conv"`` all of them by ``flax.linen.Conv``; the parameters are the same.

    ``conditioning``: "projection" (default) adds <embed(y), features> to the logit; "concat"
    feeds the one-hot label as extra input channels instead (``jsynth.models.conditioning``).
    ``spectral_norm``: every weight matrix spectrally normalised (``jsynth.models.spectral``).
    """

    width: int = 64
    num_classes: int = 0
    dropout: float = 0.0
    dtype: Any = jnp.float32
    downsample: str = "winograd"  # "winograd" | "conv": same function and parameters, see above
    conditioning: str = "projection"
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x, labels=None, train: bool = False):
        if self.downsample not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {self.downsample!r}")
        check_conditioning(self.conditioning)
        wrap = functools.partial(spectrally_normalized, enabled=self.spectral_norm, train=train)
        size = x.shape[1]
        kernel, stop = (5, 7) if size == 28 else (4, 4)
        h = x.astype(self.dtype)
        if self.conditioning == "concat":
            code = one_hot_or_none(labels, self.num_classes, self.dtype)
            if code is not None:  # one constant plane per class
                h = jnp.concatenate([h, jnp.broadcast_to(code[:, None, None, :], h.shape[:3] + code.shape[-1:])], -1)
        features, index = self.width, 0
        while h.shape[1] > stop:
            # Winograd where the output map is 7x7 or 8x8: measured faster there (README, Benchmarks)
            use_winograd = self.downsample == "winograd" and -(-h.shape[1] // 2) in (7, 8)
            layer = WinogradConv if use_winograd else functools.partial(nn.Conv, padding="SAME")
            # Named as flax auto-names Conv layers, so both modes share one parameter tree.
            h = wrap(layer(features, (kernel, kernel), (2, 2), dtype=self.dtype, name=f"Conv_{index}"))(h)
            index += 1
            h = nn.leaky_relu(h, 0.2)
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
            features *= 2
        h = h.reshape((h.shape[0], -1))
        logit = wrap(nn.Dense(1, dtype=self.dtype))(h)[:, 0]
        if self.conditioning == "projection" and self.num_classes:
            logit = logit + projection(h, labels, self.num_classes, self.dtype, wrap)
        return logit.astype(jnp.float32)
