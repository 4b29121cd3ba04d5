"""A small CNN image classifier: the feature network of the metrics and the TSTR/TRTR classifier.

Architecture only. Stages of Conv(k x k, stride 2) -> ReLU, the channels doubling from ``width``
at each stage, are stacked while the map is at least 8 pixels on a side (8x8 digits: one stage,
28x28 MNIST: two, 32x32: three, 64x64: four); then a Dense ``feature_dim`` layer with ReLU, whose
activations are the *features* (the role Inception's pool3 plays in FID), and a Dense logit layer.
At 28x28, width 32 and 3x3 kernels: conv32/2 -> conv64/2 -> fc128 -> fc10, about 99 % MNIST test
accuracy after 4 epochs. Strided convolutions rather than conv + max-pool: on a CPU the backward
pass of a full-resolution convolution costs several times more, for no accuracy a metric needs.

No BatchNorm and no dropout, on purpose: the same weights must map an image to the same features
whatever batch it arrives in, and there are no running statistics to carry in the checkpoint.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

MIN_POOLED_SIZE = 8  # a map this size or larger is halved once more


def num_stages(height: int, width: int) -> int:
    """How many conv+pool stages an image of this size gets (at least one)."""
    size, stages = min(height, width), 0
    while size >= MIN_POOLED_SIZE or stages == 0:
        size //= 2
        stages += 1
    return stages


class Classifier(nn.Module):
    """images (B, H, W, C) in [0, 1] -> logits (B, num_classes), and optionally features.

    Attributes:
      num_classes: number of output logits.
      width: channels of the first conv stage (doubled at each later stage).
      feature_dim: size of the penultimate layer, the feature space of the metrics.
      kernel: side of the square conv kernels.
      dtype: computation dtype (parameters stay float32).
    """

    num_classes: int
    width: int = 32
    feature_dim: int = 128
    kernel: int = 3
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, return_features: bool = False):
        h = x.astype(self.dtype)
        channels = self.width
        for _ in range(num_stages(x.shape[1], x.shape[2])):
            h = nn.Conv(channels, (self.kernel, self.kernel), (2, 2), padding="SAME", dtype=self.dtype)(h)
            h = nn.relu(h)
            channels *= 2
        h = h.reshape((h.shape[0], -1))
        features = nn.relu(nn.Dense(self.feature_dim, dtype=self.dtype, name="features")(h))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(features)
        logits = logits.astype(jnp.float32)
        if return_features:
            return logits, features.astype(jnp.float32)
        return logits

    def describe(self) -> str:
        """A stable text naming the architecture: part of the feature network's cache key."""
        return (f"Classifier(num_classes={self.num_classes}, width={self.width}, "
                f"feature_dim={self.feature_dim}, kernel={self.kernel}, dtype={jnp.dtype(self.dtype).name}, "
                f"stages=conv/2-relu while side>={MIN_POOLED_SIZE}, head=dense-relu-dense)")
