"""Deterministic batch order, so a resumed run sees exactly the batches it would have.

The global batch of any training step is a pure function of (seed, step,
batch_size, n): each epoch is a fresh permutation drawn from
``np.random.default_rng([seed, epoch])``, and the last ``n % batch_size``
examples of each permutation are dropped so every batch is full (a ragged
final batch would change shapes and force a recompile). Nothing about the
data order needs to be stored in a checkpoint beyond the step.
"""
import functools

import numpy as np

from jsynth.data.errors import DataError


def _check_non_negative(**values: int) -> None:
    for key, value in values.items():
        if value < 0:
            raise DataError(f"{key} must be >= 0, got {value}.")


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the n examples.

    Args:
      seed: the run's data seed (>= 0).
      epoch: 0-based epoch number.
      n: number of examples.

    Returns:
      An int64 permutation of range(n); the same arguments always give the same result.
    """
    _check_non_negative(seed=seed, epoch=epoch, n=n)
    return _cached_permutation(int(seed), int(epoch), int(n)).copy()


# Consecutive steps share an epoch, so caching the last couple of permutations
# avoids redrawing one (O(n)) per step.
@functools.lru_cache(maxsize=4)
def _cached_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    permutation = np.random.default_rng([seed, epoch]).permutation(n)
    permutation.setflags(write=False)  # shared by the cache: nobody may modify it
    return permutation


def _steps_per_epoch(batch_size: int, n: int) -> int:
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}.")
    if batch_size > n:
        raise DataError(
            f"batch_size {batch_size} is larger than the data set, which has only {n} "
            "examples; lower the batch size or use more data."
        )
    return n // batch_size


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> np.ndarray:
    """Example indices of the global batch for training step ``step``.

    Args:
      step: 0-based training step.
      batch_size: global batch size (all processes together).
      n: number of examples in the data set.
      seed: the run's data seed (>= 0).

    Returns:
      An int64 array of batch_size distinct indices in [0, n). Within one epoch
      (n // batch_size consecutive steps) every index appears at most once, and
      all but the n % batch_size dropped ones appear exactly once.
    """
    _check_non_negative(step=step)
    steps_per_epoch = _steps_per_epoch(batch_size, n)
    epoch, position = divmod(int(step), steps_per_epoch)
    _check_non_negative(seed=seed)
    permutation = _cached_permutation(int(seed), epoch, int(n))
    start = position * batch_size
    return permutation[start : start + batch_size].copy()


def data_position(step: int, batch_size: int, n: int) -> dict[str, int]:
    """Where in the data step ``step`` reads, for checkpoint metadata and logs.

    Args:
      step: 0-based training step.
      batch_size: global batch size.
      n: number of examples in the data set.

    Returns:
      {"epoch": 0-based epoch, "batch_in_epoch": 0-based batch within it}.
    """
    _check_non_negative(step=step)
    epoch, position = divmod(int(step), _steps_per_epoch(batch_size, n))
    return {"epoch": epoch, "batch_in_epoch": position}


def process_rows(global_batch_size: int, process_index: int, process_count: int) -> slice:
    """The contiguous rows of the global batch that one process loads.

    Args:
      global_batch_size: rows in the global batch.
      process_index: this process (``jax.process_index()``).
      process_count: number of processes (``jax.process_count()``).

    Returns:
      slice(process_index * per, (process_index + 1) * per), per =
      global_batch_size // process_count; the slices of all processes
      partition the batch in order.
    """
    if process_count < 1 or not 0 <= process_index < process_count:
        raise DataError(
            f"process_index {process_index} is not in [0, process_count={process_count})."
        )
    if global_batch_size % process_count:
        raise DataError(
            f"Global batch size {global_batch_size} does not divide evenly over "
            f"{process_count} processes; use a multiple of {process_count}."
        )
    per_process = global_batch_size // process_count
    return slice(process_index * per_process, (process_index + 1) * per_process)
