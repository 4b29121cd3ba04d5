"""Arrays a user hands jsynth, checked and brought to its layout: images in [0, 1], whole class ids.

One normaliser for every place that reads user arrays (npz: training data, ``jsynth eval --samples``),
so the same file is accepted, rejected and scaled the same way wherever it is given. ``where`` names
the file (and array) in the messages; ``error`` is the caller's ``UserError`` subclass.
"""
from __future__ import annotations

import numpy as np


def unit_images(x: np.ndarray, where: str, error: type[Exception], slack: float = 0.0) -> np.ndarray:
    """float32 NHWC images in [0, 1] from uint8 (0..255), bool, or floats in [0, 1] or [-1, 1].

    ``slack``: how far floats may overshoot those ranges (a generator's rounding), clipped back.
    """
    if x.size == 0:
        raise error(f"{where} holds no images")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise error(f"{where} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C in {{1, 3}}")
    if x.dtype == np.uint8:
        out = x.astype(np.float32)
        out /= 255.0
        return out
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        raise error(f"{where} has dtype {x.dtype}; expected uint8 (0..255) or floats in [0, 1] or [-1, 1]")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise error(f"{where} contains NaN or infinite values (a diverged generator or a damaged file)")
    lo, hi = float(x.min()), float(x.max())
    if lo >= -slack and hi <= 1.0 + slack:
        return np.clip(x, 0.0, 1.0) if slack else x
    if lo >= -1.0 - slack and hi <= 1.0 + slack:
        return np.clip((x + 1.0) / 2.0, 0.0, 1.0)  # a tanh generator's range
    raise error(f"{where} has range [{lo}, {hi}]; expected [0, 1] or [-1, 1] (rescale it, or save 0..255 "
                "pixels as uint8)")


def class_ids(y: np.ndarray, n: int, where: str, error: type[Exception]) -> np.ndarray:
    """int64 class ids, one per image, from integers or whole-number floats."""
    if y.shape != (n,):
        flatten = "; flatten it with y.reshape(-1)" if y.size == n else ""
        raise error(f"{where} has shape {y.shape}; expected one label per image ({n},){flatten}")
    if np.issubdtype(y.dtype, np.floating):
        if not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
            raise error(f"{where} are not whole-number class ids (found fractional or non-finite values)")
    elif not np.issubdtype(y.dtype, np.integer):
        raise error(f"{where} has dtype {y.dtype}; expected integer class ids")
    return y.astype(np.int64)
