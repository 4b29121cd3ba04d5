"""DiffAugment (Zhao et al. 2020): differentiable augmentations for GAN training on little data.

The discriminator sees real and fake images through the same random transformations (drawn
independently for each image), in its own update and in the generator's, and the generator's
gradient flows back through them; D then cannot memorise the few real images, and the
augmentations do not leak into the samples because G is never rewarded for producing them.

Each transformation takes one image (H, W, C) in [-1, 1] and one key, and is differentiable in
the image; ``diff_augment`` maps them over a batch with one key per image, so that an image's
augmentation depends only on its key (``jsynth.train.steps.row_keys`` gives each row of the
global batch its own key: 1 device and 8 devices augment alike). Magnitudes follow the paper's
reference code: translation by up to 1/8 of the image (zero padded), a cutout square of half
the image's size, brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5].
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

Augmentation = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


def _shifted(length: int, shift, dtype):
    """The (length, length) matrix M with (M @ v)[i] = v[i + shift], 0 outside the vector.

    A product with a one-hot matrix is exact (1 * v + 0 * ...) and differentiable, and it keeps a
    per-image shift free of gathers (matrix products, which every backend runs fast).
    """
    rows = jnp.arange(length)
    return (rows[None, :] == rows[:, None] + shift).astype(dtype)


def translation(image, key, ratio: float = 0.125):
    """Moves the image by up to ``ratio`` of its height and width (integers), filling with 0."""
    height, width, _ = image.shape
    key_y, key_x = jax.random.split(key)
    max_y, max_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = jax.random.randint(key_y, (), -max_y, max_y + 1)
    shift_x = jax.random.randint(key_x, (), -max_x, max_x + 1)
    highest = jax.lax.Precision.HIGHEST  # no reduced-precision (TF32) products: the copy stays exact
    moved = jnp.einsum("ik,kwc->iwc", _shifted(height, shift_y, image.dtype), image, precision=highest)
    return jnp.einsum("jl,ilc->ijc", _shifted(width, shift_x, image.dtype), moved, precision=highest)


def cutout(image, key, ratio: float = 0.5):
    """Zeroes a square of ``ratio`` of the image's size at a random place (may overlap the edge)."""
    height, width, _ = image.shape
    key_y, key_x = jax.random.split(key)
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = jax.random.randint(key_y, (), 0, height + (1 - size_y % 2))
    centre_x = jax.random.randint(key_x, (), 0, width + (1 - size_x % 2))

    def inside(length, centre, size):
        start = centre - size // 2
        index = jnp.arange(length)
        return (index >= start) & (index < start + size)

    hole = inside(height, centre_y, size_y)[:, None] & inside(width, centre_x, size_x)[None, :]
    return image * (~hole)[:, :, None].astype(image.dtype)


def color(image, key):
    """Random brightness (+U(-0.5, 0.5)), saturation (x U(0, 2)) and contrast (x U(0.5, 1.5)).

    Saturation scales each pixel's distance from its mean over channels (nothing on grey
    images), contrast the distance from the image's mean, as in DiffAugment's ``rand_*``.
    """
    brightness, saturation, contrast = jax.random.uniform(key, (3,), image.dtype)
    image = image + (brightness - 0.5)
    mean = jnp.mean(image, axis=-1, keepdims=True)
    image = (image - mean) * (saturation * 2.0) + mean
    mean = jnp.mean(image)
    return (image - mean) * (contrast + 0.5) + mean


def diff_augment(images, keys, augmentations: Sequence[Augmentation]):
    """Applies ``augmentations`` in order to each image of ``images`` (B, H, W, C) with its key.

    Args:
      images: (B, H, W, C) in [-1, 1] (any float dtype; the result has the same dtype).
      keys: (B,) keys, one per image; the k-th augmentation uses ``fold_in(key, k)``.
      augmentations: e.g. ``(translation, cutout, color)``; empty: images returned unchanged.
    """
    if not augmentations:
        return images

    def one(image, key):
        for index, augmentation in enumerate(augmentations):
            image = augmentation(image, jax.random.fold_in(key, index))
        return image

    return jax.vmap(one)(images, keys)
