"""Image grids as PNG files (pillow): what a person looks at to judge samples."""
from __future__ import annotations

import io
import math
import os

import numpy as np
from PIL import Image

from jsynth.atomic import write_atomic


def grid(images: np.ndarray, columns: int | None = None, pad: int = 1, upscale: int = 1) -> np.ndarray:
    """Tiles (N, H, W, C) images in [0, 1] into one uint8 (rows*H', cols*W', C) array."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W, C), got {images.shape}")
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    if upscale > 1:
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
        h, w = h * upscale, w * upscale
    canvas = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.float32)
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images[i]
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def tiles(pixels: np.ndarray, num: int, image_shape) -> np.ndarray:
    """The inverse of ``grid(images, pad=0)`` for ``num`` images of ``image_shape`` (H, W, C):
    (num, H, W, C) uint8, read row by row from a (rows*H, columns*W[, C]) picture."""
    h, w, c = (int(s) for s in image_shape)
    columns = math.ceil(math.sqrt(num))
    rows = math.ceil(num / columns)
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape != (rows * h, columns * w, c):
        raise ValueError(f"a grid of {num} images of {h}x{w}x{c} is {rows * h}x{columns * w}x{c} "
                         f"pixels, got {pixels.shape}")
    cells = pixels.reshape(rows, h, columns, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * columns, h, w, c)
    return cells[:num]


def save_grid(images: np.ndarray, path: str, columns: int | None = None, upscale: int | None = None) -> str:
    """Writes a PNG grid atomically; small images are upscaled so a person can see them."""
    size = np.asarray(images).shape[1]
    upscale = upscale or max(1, 64 // max(size, 1))
    pixels = grid(images, columns, upscale=upscale)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    picture.save(buffer, format="png")
    write_atomic(path, buffer.getvalue())
    return path
