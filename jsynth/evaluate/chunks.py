"""Fixed-shape chunking: one compiled device function applied to an array of any length.

A jitted function compiles once per input shape. To run it over N rows without compiling once per
N (or once for the ragged last chunk), the rows go through in chunks of exactly ``rows`` rows, the
last one padded, and the padded rows of the outputs are sliced off. ``map_chunks`` does that for
the neighbour kernels (``neighbours``) and the classifier's logits and features (``classify``).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np


def pad_rows(x: np.ndarray, rows: int, value: float = 0.0) -> np.ndarray:
    """``x`` (n, ...) with rows of ``value`` appended up to ``rows`` rows (n <= rows)."""
    pad = [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad, constant_values=value)


def map_chunks(fn: Callable[[np.ndarray, int], object], x: np.ndarray, rows: int):
    """``fn(chunk, start)`` over ``x`` in chunks of exactly ``rows`` rows; outputs joined on the host.

    Args:
      fn: takes a host array of shape (rows,) + x.shape[1:] (the last chunk zero-padded) and the
        index of its first row in ``x``; returns an array or a pytree of arrays (device or host),
        each with one leading row per input row.
      x: (N, ...) host array, N >= 1.
      rows: rows per chunk.

    Returns:
      ``fn``'s output structure, each leaf the chunks' leaves concatenated as numpy arrays and cut
      to N rows. Outputs stay on the device until all chunks are dispatched, so the next chunk
      starts while the previous one runs.
    """
    n = x.shape[0]
    if n == 0 or rows < 1:
        raise ValueError(f"map_chunks needs at least one row and one row per chunk, got {n} and {rows}")
    outputs = [fn(pad_rows(x[start:start + rows], rows), start) for start in range(0, n, rows)]
    host = jax.device_get(outputs)
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *host)
