"""What a table model is built for (``TableShape``), and the sampling draws both table families share.

The image families are built for an image shape (H, W, C); the table families for a
``TableShape``: the encoded row's segments and the discrete columns with their category
frequencies, read from the fitted ``jsynth.tables.TableTransform`` and the training rows. It is a
NamedTuple of tuples, so it is hashable (modules and decoders carry it) and it round-trips through
a checkpoint's JSON metadata as nested lists (``TableShape.of`` turns those back).

Sampling draws everything from the per-row latent (``jsynth.sampling.latents``): a table
decoder's latent is the network's noise followed by one standard normal per output column (the
Gaussian noise of continuous values, turned into Gumbel noise for the categorical draws) and two
more for drawing a condition. So row i still depends on (seed, i) alone.
"""
from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jsynth.errors import InputError
from jsynth.models.tabular import Layout

UNCONDITIONED = -1  # a decoder's ``condition``: draw it per row (from the data's frequencies)


class TableShape(NamedTuple):
    layout: Layout                                  # (activation, start, width) per segment
    spans: tuple[tuple[int, int], ...]              # (start, width) of each discrete column's one-hot
    span_frequencies: tuple[tuple[float, ...], ...]  # each discrete column's category frequencies
    span_columns: tuple[str, ...]                   # the discrete columns' names
    target_span: int = -1                           # the target column's span (-1: no target)
    transform_digest: str = ""                      # sha256 of the TableTransform's JSON (what decodes)

    @staticmethod
    def of(value) -> "TableShape":
        """A TableShape from itself or from its JSON form (nested lists)."""
        if isinstance(value, TableShape):
            return value
        layout, spans, frequencies, columns, target, digest = value
        return TableShape(tuple((str(a), int(s), int(w)) for a, s, w in layout),
                          tuple((int(s), int(w)) for s, w in spans),
                          tuple(tuple(float(f) for f in row) for row in frequencies),
                          tuple(str(c) for c in columns), int(target), str(digest))

    @property
    def output_dim(self) -> int:
        return sum(width for _, _, width in self.layout)

    @property
    def cond_dim(self) -> int:
        """Width of CTGAN's conditional vector: every discrete column's categories side by side."""
        return sum(width for _, width in self.spans)

    @property
    def span_offsets(self) -> tuple[int, ...]:
        """Where each discrete column's categories start in the conditional vector."""
        return tuple(int(x) for x in np.cumsum([0] + [w for _, w in self.spans])[:-1])

    def flat_condition(self, span_index: int, category: int) -> int:
        if not (0 <= span_index < len(self.spans) and 0 <= category < self.spans[span_index][1]):
            raise InputError(f"condition ({span_index}, {category}) is outside this model's discrete columns")
        return self.span_offsets[span_index] + category


def transform_digest(transform) -> str:
    """sha256 of a TableTransform's JSON form (sorted keys): names the transform a model decodes with."""
    return hashlib.sha256(json.dumps(transform.to_json(), sort_keys=True).encode()).hexdigest()


def table_shape(transform, rows: np.ndarray, target: str | None = None) -> TableShape:
    """The TableShape of a fitted transform and its encoded training rows (N, D)."""
    layout = tuple((s.activation, int(s.start), int(s.width)) for s in transform.layout)
    spans = tuple((int(s.start), int(s.width)) for s in transform.discrete_spans)
    columns = tuple(str(s.column) for s in transform.discrete_spans)
    frequencies = []
    for start, width in spans:
        counts = rows[:, start:start + width].sum(axis=0, dtype=np.float64)
        frequencies.append(tuple(float(c) for c in counts / max(counts.sum(), 1.0)))
    target_span = columns.index(target) if target is not None and target in columns else -1
    return TableShape(layout, spans, tuple(frequencies), columns, target_span, transform_digest(transform))


def gumbel_from_normal(n):
    """Gumbel(0, 1) noise from standard normal noise (through its CDF): what the decoders turn
    their extra latent columns into for the categorical draws."""
    u = jnp.clip(jax.scipy.special.ndtr(n), 1e-7, 1.0 - 1e-7)
    return -jnp.log(-jnp.log(u))


def draw_category(n, frequencies):
    """Category indices (B,) drawn from ``frequencies`` (K,) with standard normal noise n (B,)."""
    cumulative = jnp.asarray(np.cumsum(frequencies)[:-1], jnp.float32)
    u = jax.scipy.special.ndtr(n)
    return jnp.sum(u[:, None] > cumulative[None, :], axis=-1).astype(jnp.int32)


def draw_flat_condition(n_column, n_category, shape: TableShape):
    """CTGAN's sampling-time condition (B,): a discrete column uniformly, then one of its
    categories by its frequency in the data, as an index into the conditional vector."""
    count = len(shape.spans)
    column = jnp.minimum((jax.scipy.special.ndtr(n_column) * count).astype(jnp.int32), count - 1)
    widest = max(width for _, width in shape.spans)
    table = np.ones((count, widest), np.float64)  # past a column's width: cumulative 1 (never drawn)
    for i, frequencies in enumerate(shape.span_frequencies):
        table[i, :len(frequencies) - 1] = np.cumsum(frequencies)[:-1]
    cumulative = jnp.asarray(table[:, :widest - 1], jnp.float32)[column]
    u = jax.scipy.special.ndtr(n_category)
    category = jnp.sum(u[:, None] > cumulative, axis=-1).astype(jnp.int32)
    category = jnp.minimum(category, jnp.asarray([w for _, w in shape.spans], jnp.int32)[column] - 1)
    return jnp.asarray(shape.span_offsets, jnp.int32)[column] + category


def finish_rows(raw, layout: Layout, noise, sigmas=None, fixed=None):
    """An encoded row from a decoder's raw output (B, D) and one standard normal per column (B, D):
    tanh values (plus ``sigmas`` x the noise, clipped to [-1, 1], where a likelihood has a scale)
    and one-hot categories drawn by Gumbel-max (the exact draw from softmax(raw)).

    ``fixed``: ``(start, categories (B,))``: the segment starting at ``start`` takes these
    categories (the condition the rows were generated for; exact, so no rejection sampling).
    """
    gumbel = gumbel_from_normal(noise)
    parts, t = [], 0
    for activation, start, width in layout:
        if activation == "tanh":
            value = jnp.tanh(raw[:, start:start + 1])
            if sigmas is not None:
                value = jnp.clip(value + sigmas[t] * noise[:, start:start + 1], -1.0, 1.0)
            t += 1
            parts.append(value)
        else:
            choice = jnp.argmax(raw[:, start:start + width] + gumbel[:, start:start + width], axis=-1)
            if fixed is not None and fixed[0] == start:
                choice = fixed[1]
            parts.append(jax.nn.one_hot(choice, width, dtype=raw.dtype))
    return jnp.concatenate(parts, axis=-1)
