"""The sampling core: pure, model-agnostic, sharded over every device, deterministic.

A *decode* function ``decode(variables, z, labels) -> images in [0, 1]`` is all it knows of a
model (``jsynth.families``' ``decode`` makes them for GAN generators and VAE decoders). Sample ``i`` of a
request depends only on ``(seed, i)``: its latent is ``normal(fold_in(key(seed), i))`` and its
label (balanced mode) is ``i % num_classes``. So latents are bitwise identical whatever the chunk
size or device count, and outputs are bitwise identical for the same chunk size and devices.

Every chunk has the same shape (one compile; the last one is padded and trimmed on the host).
The latents are drawn on the devices, each device computing its own slice of the chunk, and
chunk k+1 is dispatched before chunk k is copied to the host, so the copy overlaps compute.
"""
from __future__ import annotations

import functools
from typing import Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from jsynth.errors import InputError
from jsynth.parallel import DATA_AXIS, check_batch_size

BALANCED = -1  # label value meaning "class i % num_classes for sample i"


class Chunk(NamedTuple):
    start: int               # index of the first sample
    images: np.ndarray       # (n, H, W, C) float32 in [0, 1], host memory
    labels: np.ndarray | None


def latents(seed, indices, latent_dim: int, dtype=jnp.float32):
    """Latent vectors of samples ``indices``: row i is N(0, I) from fold_in(key(seed), i) only."""
    base = jax.random.key(seed)
    draw = lambda i: jax.random.normal(jax.random.fold_in(base, i), (latent_dim,), dtype)
    return jax.vmap(draw)(indices)


def labels_for(indices, label, num_classes: int):
    """Class labels of samples ``indices``: ``label`` for all, or ``i % num_classes`` if BALANCED."""
    balanced = (indices % num_classes).astype(jnp.int32)
    return jnp.where(label == BALANCED, balanced, label).astype(jnp.int32)


CONV_DEVICE_ROWS = 64  # rows per device and decode step for the DCGAN generators (make_chunk_fn)


def _slice_rows(rows: int, limit: int) -> int:
    """The largest divisor of ``rows`` that is at most ``limit`` (at least 1)."""
    return max(d for d in range(1, min(rows, max(limit, 1)) + 1) if rows % d == 0)


def model_dims(decode: Callable, latent_dim: int | None, num_classes: int | None) -> tuple[int, int]:
    """``(latent_dim, num_classes)``: as given, else the decode function's own.

    The families' decoders (``GeneratorDecode``, ``VAEDecode``) carry both, read from their
    modules, so a caller need not repeat them; a plain function must be told ``latent_dim``.
    """
    if latent_dim is None:
        latent_dim = getattr(decode, "latent_dim", None)
        if latent_dim is None:
            raise InputError("this decode function does not say its latent width: pass latent_dim=")
    if num_classes is None:
        num_classes = getattr(decode, "num_classes", 0)
    return int(latent_dim), int(num_classes)


def make_chunk_fn(decode: Callable, *, latent_dim: int | None = None, chunk_size: int,
                  num_classes: int | None = None, mesh: Mesh | None = None, device_rows: int | None = None):
    """A jitted ``(variables, seed, start, label) -> (images, labels)`` for one fixed-size chunk.

    Cached: equal arguments (``decode`` compared by equality, as the families' frozen
    decoders are) return the same jitted function, so repeated sampling of one model (grids
    during training, in-loop FD, ``jsynth eval``) traces and compiles it once.

    ``seed``, ``start`` and ``label`` are traced, so neither a new seed, a new position nor a new
    class recompiles. With a mesh, the chunk is split over its devices (``shard_map``: each device
    draws the latents of its own rows). With ``device_rows``, each device decodes its rows that
    many at a time (``lax.map``), so a convolutional generator's temporaries stay cache-sized,
    where XLA:CPU's copies and transposes run much faster (``CONV_DEVICE_ROWS``: dcgan28 2,506 vs
    1,485 samples/s in 1,024-sample chunks on 2 devices; README, Benchmarks); None decodes them in
    one step (an MLP's matrix products want the rows together). No sample changes: each depends
    on (seed, i) only.
    """
    if mesh is not None:
        check_batch_size(chunk_size, mesh)
    latent_dim, num_classes = model_dims(decode, latent_dim, num_classes)
    return _chunk_fn(decode, latent_dim, chunk_size, num_classes, mesh, device_rows)


@functools.lru_cache(maxsize=32)
def _chunk_fn(decode, latent_dim, chunk_size, num_classes, mesh, device_rows):
    devices = 1 if mesh is None else mesh.devices.size
    rows = chunk_size // devices
    step = rows if device_rows is None else _slice_rows(rows, device_rows)

    def decode_rows(variables, seed, first, label):
        def piece(offset):
            indices = first + offset + jnp.arange(step, dtype=jnp.uint32)
            labels = labels_for(indices, label, num_classes) if num_classes else None
            return decode(variables, latents(seed, indices, latent_dim), labels), labels

        if step == rows:
            return piece(jnp.uint32(0))
        images, labels = jax.lax.map(piece, jnp.arange(0, rows, step, dtype=jnp.uint32))
        return images.reshape((rows,) + images.shape[2:]), None if labels is None else labels.reshape(rows)

    def chunk(variables, seed, start, label):
        first = start.astype(jnp.uint32)
        if mesh is not None:
            first = first + jax.lax.axis_index(DATA_AXIS).astype(jnp.uint32) * rows
        return decode_rows(variables, seed, first, label)

    if mesh is None:
        return jax.jit(chunk)
    data = P(DATA_AXIS)
    return jax.jit(jax.shard_map(chunk, mesh=mesh, in_specs=(P(), P(), P(), P()),
                                 out_specs=(data, data if num_classes else None), check_vma=False))


def sample_chunks(chunk_fn, variables, *, seed: int, start: int, stop: int, chunk_size: int,
                  label: int = BALANCED) -> Iterator[Chunk]:
    """Yields samples ``start .. stop-1`` as host-memory chunks of ``chunk_size`` (last one shorter).

    Chunk k+1 is dispatched before chunk k is awaited: device compute overlaps the host copy.
    """
    def dispatch(position):
        images, labels = chunk_fn(variables, np.uint32(seed), np.uint32(position), np.int32(label))
        for array in (images, labels):
            if array is not None:
                array.copy_to_host_async()
        return position, images, labels

    positions = range(start, stop, chunk_size)
    if not len(positions):
        return  # an empty range: no chunks
    pending = dispatch(positions[0])
    for next_position in list(positions[1:]) + [None]:
        ahead = dispatch(next_position) if next_position is not None else None
        position, images, labels = pending
        n = min(chunk_size, stop - position)
        host_images = np.asarray(images)[:n]
        host_labels = None if labels is None else np.asarray(labels)[:n]
        yield Chunk(position, host_images, host_labels)
        pending = ahead


def sample(decode: Callable, variables, *, num: int, latent_dim: int | None = None, seed: int = 0,
           chunk_size: int = 256, num_classes: int | None = None, label: int = BALANCED,
           mesh: Mesh | None = None, start: int = 0, device_rows: int | None = None):
    """Samples ``start .. start+num-1`` in memory: (images (num, H, W, C) in [0, 1], labels or None).

    ``latent_dim``/``num_classes`` default to the decoder's own (``model_dims``); ``label`` is a
    class for every sample, or BALANCED (sample i gets class i % num_classes).
    For large requests stream with ``sample_chunks`` (or ``jsynth.shards.write_samples``) instead.
    """
    if num <= 0:
        raise InputError(f"num must be positive, got {num}")
    latent_dim, num_classes = model_dims(decode, latent_dim, num_classes)
    if label != BALANCED and not (num_classes and 0 <= label < num_classes):
        raise InputError(f"label={label} needs a model conditioned on classes 0..{num_classes - 1}"
                         if num_classes else f"label={label}, but this model is unconditional")
    chunk_fn = make_chunk_fn(decode, latent_dim=latent_dim, chunk_size=chunk_size,
                             num_classes=num_classes, mesh=mesh, device_rows=device_rows)
    chunks = list(sample_chunks(chunk_fn, variables, seed=seed, start=start, stop=start + num,
                                chunk_size=chunk_size, label=label))
    images = np.concatenate([c.images for c in chunks])
    labels = np.concatenate([c.labels for c in chunks]) if num_classes else None
    return images, labels
