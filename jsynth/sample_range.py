"""``jsynth sample --range START:STOP``: one piece of a request split over a scheduler's job array.

The rule that lets pieces merge: shard k of a request holds samples ``k*S .. (k+1)*S - 1``
(``S`` the shard size, whatever the range), and is named ``part-{k:05d}`` as in an
uninterrupted run. So a range must start on a shard boundary and stop on one (or at ``--num``):
then every piece writes whole shards, byte for byte the files one uninterrupted run writes
(sample i depends only on (seed, i)), and ``jsynth manifest merge`` only has to check and list
them. A piece lists its shards in its own ``manifest.range-START-STOP.json``, so the tasks of a
job array can write into one shared directory at once without touching each other's files.

This module knows nothing of the shard format (npz, png, table shards): only indices and names.
"""
from __future__ import annotations

import hashlib
import re

import jax
import numpy as np

from jsynth.errors import UserError
from jsynth.shards import write_samples

PIECE_PATTERN = re.compile(r"^manifest\.range-(\d+)-(\d+)\.json$")
# Fields a piece's manifest has and one uninterrupted run's does not; merge checks, then drops them.
PIECE_FIELDS = ("range", "model_sha256")


class RangeError(UserError, ValueError):
    """A --range that does not name whole shards of the request; the message says which would."""


def piece_manifest_name(start: int, stop: int) -> str:
    return f"manifest.range-{start}-{stop}.json"


def range_shards(start: int, stop: int, *, num: int, shard_size: int) -> range:
    """Indices of the shards that samples ``start .. stop-1`` fill exactly.

    Raises:
      RangeError: the range is empty, leaves ``0..num``, or does not start and stop on shard
        boundaries (the message names the nearest ranges that would).
    """
    if not 0 <= start < stop <= num:
        raise RangeError(f"--range {start}:{stop} must satisfy 0 <= START < STOP <= --num ({num})")
    if start % shard_size or (stop % shard_size and stop != num):
        lower = start // shard_size * shard_size
        upper = min(num, -(-stop // shard_size) * shard_size)
        raise RangeError(f"--range {start}:{stop} does not fall on shard boundaries: START must be a "
                         f"multiple of the shard size {shard_size} (--shard-size, rounded up to a "
                         f"multiple of --batch-size) and STOP too, or equal to --num ({num}); "
                         f"e.g. --range {lower}:{upper}, or give every task N = a multiple of "
                         f"{shard_size} samples")
    return range(start // shard_size, -(-stop // shard_size))


def model_sha256(variables) -> str:
    """A digest of the sampling weights: pieces of one request must come from the same model.

    Over every leaf's path, dtype, shape and bytes, so two checkpoints that differ anywhere (or
    two models that happen to share a step number) never merge.
    """
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        array = np.asarray(jax.device_get(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def write_piece(out_dir: str, chunks, sample_range: tuple[int, int], *, num: int, shard_size: int,
                request: dict, fmt: str, model, progress: bool = True) -> dict:
    """Writes the shards of ``sample_range`` into ``out_dir`` and returns the piece's manifest.

    The piece's manifest is the uninterrupted run's plus ``range`` and ``model_sha256`` (what
    ``jsynth manifest merge`` checks); a rerun of the same task keeps its finished shards.

    Raises:
      RangeError: a bad range, or a multi-process run (each task of a job array is one process).
    """
    if jax.process_count() > 1:
        raise RangeError("--range runs as one process: split the request over more job-array "
                         "tasks instead of over processes")
    start, stop = sample_range
    shards = range_shards(start, stop, num=num, shard_size=shard_size)
    # Appended last: dropping these from the piece gives the key order of an uninterrupted run.
    piece = dict(request, model_sha256=model_sha256(model.variables), range=[start, stop])
    return write_samples(out_dir, chunks, num=num, shard_size=shard_size, request=piece, fmt=fmt,
                         shard_indices=shards, manifest_name=piece_manifest_name(start, stop),
                         progress=progress)
