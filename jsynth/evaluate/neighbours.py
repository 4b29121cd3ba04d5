"""Chunked nearest-neighbour searches over feature arrays, the engine under PRDC and privacy metrics.

Every metric in this package that looks at neighbours (precision/recall, density/coverage, DCR,
NNDR, membership inference) asks one of two questions of a query set Q (N, D) against a reference
set R (M, D):

* which are the k nearest rows of R to each query (`k_nearest`, `nearest_distances`,
  `kth_neighbour_distances`), and
* how many balls B(r_i, radius_i) around reference rows contain each query (`ball_counts`).

Both are answered without ever holding an N x M distance matrix: the queries go through in chunks of
`chunk_size` rows, and inside one jitted kernel a `lax.scan` walks over R in blocks of `chunk_size`
rows, so the largest live array is chunk_size x chunk_size (16 MiB at the default 2048). The last
query chunk and the last reference block are padded to the full shape, so each kernel compiles once
per (M, D, k) and not once per chunk; padded reference rows are masked out, padded query rows are
sliced off (`jsynth.evaluate.chunks.map_chunks`).

Distances are Euclidean, computed in float32 as sqrt(max(||q||^2 + ||r||^2 - 2 q.r, 0)). Both sets
are first shifted by the reference mean (distances do not change) because the rounding error of
that expansion grows with ||q||^2 + ||r||^2, and features such as Inception pool activations sit far
from the origin.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jsynth.evaluate.chunks import map_chunks, pad_rows

DEFAULT_CHUNK_SIZE = 2048


def _pairwise_distances(queries: jax.Array, block: jax.Array) -> jax.Array:
    """Euclidean distances (chunk_q, chunk_r) between two small float32 blocks."""
    # HIGHEST: on GPUs the default float32 matmul runs in TF32 (10-bit mantissa), which would move
    # distances by ~1e-3 relative and flip ball-membership decisions.
    cross = jnp.matmul(queries, block.T, precision=jax.lax.Precision.HIGHEST)
    squared = (
        jnp.sum(queries * queries, axis=1)[:, None] + jnp.sum(block * block, axis=1)[None, :] - 2.0 * cross
    )
    # The expansion can dip a little below 0 for (near-)identical rows; a negative under sqrt is NaN.
    return jnp.sqrt(jnp.maximum(squared, 0.0))


@functools.partial(jax.jit, static_argnames=("k", "exclude_self"))
def _k_nearest_chunk(queries, query_start, ref_blocks, n_ref, *, k, exclude_self):
    """The k smallest distances (ascending) and their reference indices for one query chunk."""
    chunk_q = queries.shape[0]
    n_blocks, chunk_r, _ = ref_blocks.shape
    query_index = query_start + jnp.arange(chunk_q, dtype=jnp.int32)

    def merge_block(best, inputs):
        best_d, best_i = best
        block, block_start = inputs
        ref_index = block_start + jnp.arange(chunk_r, dtype=jnp.int32)
        d = _pairwise_distances(queries, block)
        invalid = jnp.broadcast_to(ref_index[None, :] >= n_ref, d.shape)
        if exclude_self:
            invalid = invalid | (ref_index[None, :] == query_index[:, None])
        d = jnp.where(invalid, jnp.inf, d)
        # The running best comes first, so on equal distances top_k keeps the lower reference
        # index (blocks arrive in index order): the same tie rule as numpy's argmin/argsort.
        cand_d = jnp.concatenate([best_d, d], axis=1)
        cand_i = jnp.concatenate([best_i, jnp.broadcast_to(ref_index[None, :], d.shape)], axis=1)
        neg_d, pos = jax.lax.top_k(-cand_d, k)
        return (-neg_d, jnp.take_along_axis(cand_i, pos, axis=1)), None

    init = (jnp.full((chunk_q, k), jnp.inf, jnp.float32), jnp.full((chunk_q, k), -1, jnp.int32))
    block_starts = jnp.arange(n_blocks, dtype=jnp.int32) * chunk_r
    (best_d, best_i), _ = jax.lax.scan(merge_block, init, (ref_blocks, block_starts))
    return best_d, best_i


@jax.jit
def _ball_count_chunk(queries, ref_blocks, radius_blocks):
    """Per query row, how many reference balls (strict: distance < radius) contain it."""

    def count_block(count, inputs):
        block, radius = inputs
        inside = _pairwise_distances(queries, block) < radius[None, :]
        return count + jnp.sum(inside, axis=1, dtype=jnp.int32), None

    init = jnp.zeros((queries.shape[0],), jnp.int32)
    count, _ = jax.lax.scan(count_block, init, (ref_blocks, radius_blocks))
    return count


def _as_features(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {x.shape}")
    return x


def _centred_float32(queries, reference) -> tuple[np.ndarray, np.ndarray]:
    """Validate both sets and shift them by the reference mean, as float32 (see module docstring)."""
    queries = _as_features(queries, "queries")
    reference = _as_features(reference, "reference")
    if queries.shape[1] != reference.shape[1]:
        raise ValueError(f"feature sizes differ: queries {queries.shape}, reference {reference.shape}")
    offset = reference.mean(axis=0, dtype=np.float64)
    return (queries - offset).astype(np.float32), (reference - offset).astype(np.float32)


def _chunk_rows(n: int, chunk_size: int) -> int:
    """Rows per chunk: chunk_size, or fewer for small sets so a 100-row set is not padded to 2048."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    return min(chunk_size, -(-n // 8) * 8)


def _as_blocks(x: np.ndarray, chunk_size: int, value: float = 0.0) -> jax.Array:
    """(M, ...) -> (ceil(M / c), c, ...) on device, the last block padded with `value`."""
    rows = _chunk_rows(x.shape[0], chunk_size)
    n_blocks = -(-x.shape[0] // rows)
    padded = pad_rows(x, n_blocks * rows, value)
    return jnp.asarray(padded.reshape((n_blocks, rows) + x.shape[1:]))


def k_nearest(queries, reference, k: int, *, exclude_self: bool = False,
              chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest reference rows of every query row, chunked.

    Args:
      queries: (N, D) features.
      reference: (M, D) features.
      k: number of neighbours, 1 <= k <= M (M - 1 with exclude_self).
      exclude_self: the queries ARE the reference set (row i of both is the same record); skip
        reference index i for query i. Other rows equal to row i are still neighbours at distance 0.
      chunk_size: rows per query chunk and per reference block.

    Returns:
      (distances, indices): float32 (N, k) ascending Euclidean distances and int32 (N, k) indices
      into `reference`. Equal distances are ordered by lower reference index.
    """
    q, r = _centred_float32(queries, reference)
    if exclude_self and q.shape != r.shape:
        raise ValueError(f"exclude_self needs queries to be the reference set, got {q.shape} vs {r.shape}")
    available = r.shape[0] - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k must be in [1, {available}] for {r.shape[0]} reference rows, got {k}")
    blocks = _as_blocks(r, chunk_size)
    n_ref = jnp.int32(r.shape[0])
    kernel = lambda chunk, start: _k_nearest_chunk(  # noqa: E731
        jnp.asarray(chunk), jnp.int32(start), blocks, n_ref, k=k, exclude_self=exclude_self)
    return map_chunks(kernel, q, _chunk_rows(q.shape[0], chunk_size))


def nearest_distances(queries, reference, *, exclude_self: bool = False,
                      chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, the nearest reference row of every query row.

    Args:
      queries: (N, D) features.
      reference: (M, D) features.
      exclude_self: the queries are the reference set; query i may not match reference row i.
      chunk_size: rows per query chunk and per reference block.

    Returns:
      (distances, indices): float32 (N,) and int32 (N,); ties go to the lower reference index.
    """
    d, i = k_nearest(queries, reference, 1, exclude_self=exclude_self, chunk_size=chunk_size)
    return d[:, 0], i[:, 0]


def kth_neighbour_distances(x, k: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """Distance from every row of x to its k-th nearest *other* row (the k-NN radius).

    This is the prdc package's `compute_nearest_neighbour_distances(x, k)`, which takes the
    (k+1)-th smallest distance with the row itself counted as the first.

    Args:
      x: (N, D) features, N > k.
      k: which neighbour, k >= 1.
      chunk_size: rows per query chunk and per reference block.

    Returns:
      float32 (N,) radii.
    """
    d, _ = k_nearest(x, x, k, exclude_self=True, chunk_size=chunk_size)
    return d[:, k - 1]


def ball_counts(queries, centres, radii, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """For every query row, the number of balls B(centres_i, radii_i) that contain it.

    Containment is strict (distance < radius), as in the prdc package, so a ball of radius 0
    contains nothing.

    Args:
      queries: (N, D) features.
      centres: (M, D) ball centres.
      radii: (M,) ball radii.
      chunk_size: rows per query chunk and per centre block.

    Returns:
      int32 (N,) counts in [0, M].
    """
    q, c = _centred_float32(queries, centres)
    radii = np.asarray(radii, np.float32)
    if radii.shape != (c.shape[0],):
        raise ValueError(f"radii must have shape ({c.shape[0]},), got {radii.shape}")
    blocks = _as_blocks(c, chunk_size)
    # Padded centres get radius -1: no distance (always >= 0) is below it, so they count nothing.
    radius_blocks = _as_blocks(radii, chunk_size, value=-1.0)
    kernel = lambda chunk, _: _ball_count_chunk(jnp.asarray(chunk), blocks, radius_blocks)  # noqa: E731
    return map_chunks(kernel, q, _chunk_rows(q.shape[0], chunk_size))
