"""Poisson-sampled batches of a fixed compiled shape: what DP-SGD's accounting assumes.

Each example joins step ``t``'s batch independently with probability ``q`` (the accountant's
``sampling_rate``), drawn from ``(seed, t)`` alone, so a resumed run draws exactly the batches of
a run never stopped. The batch is padded to ``max_batch_size`` rows and carries a ``mask`` (1 for
an example, 0 for padding): one compiled step for the whole run.

Overflow (more examples drawn than ``max_batch_size``): ``max_batch_size`` is chosen so that
this happens with probability below ``OVERFLOW_PROBABILITY`` per step (Binomial(n, q) tail),
i.e. practically never. If it does happen, nothing is dropped or redrawn (either would change
the mechanism the accountant assumes): that one batch is padded to a larger multiple of the
devices, the step compiles once more for it, and a line says so. The count is ``overflows``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from jsynth.data.batches import process_rows

OVERFLOW_PROBABILITY = 1e-9
_STREAM = 0x44502D5347  # "DP-SG": keeps these draws apart from other uses of the seed


def max_batch_size(n: int, sampling_rate: float, multiple: int = 1) -> int:
    """Rows to pad to: P(Binomial(n, q) > rows) < ``OVERFLOW_PROBABILITY``, rounded up to ``multiple``."""
    rows = int(stats.binom.isf(OVERFLOW_PROBABILITY, n, sampling_rate)) + 1
    return _round_up(max(rows, 1), multiple)


def poisson_indices(seed: int, step: int, n: int, sampling_rate: float) -> np.ndarray:
    """Sorted indices of the examples in step ``step``'s batch: each in with probability q, from (seed, step)."""
    rng = np.random.default_rng([_STREAM, int(seed), int(step)])
    return np.flatnonzero(rng.random(n) < sampling_rate)


class PoissonBatches:
    """Step ``t``'s padded, masked Poisson batch of ``images`` (and ``labels``)."""

    def __init__(self, images, labels, sampling_rate: float, seed: int, multiple: int,
                 process_index: int = 0, process_count: int = 1):
        """``multiple``: the devices (the padded size divides them); each process loads its own rows."""
        self.images, self.labels, self.sampling_rate, self.seed = images, labels, sampling_rate, seed
        self.multiple, self.process = multiple, (process_index, process_count)
        self.size = max_batch_size(len(images), sampling_rate, multiple)
        self.overflows = 0

    def batch(self, step: int) -> dict:
        index = poisson_indices(self.seed, step, len(self.images), self.sampling_rate)
        size = self.size
        if len(index) > size:
            size = _round_up(len(index), self.multiple)
            self.overflows += 1
            print(f"DP: step {step} drew {len(index)} examples, more than the {self.size} rows the batch is "
                  f"padded to (probability < {OVERFLOW_PROBABILITY:g}); padded to {size} for this step "
                  "(one extra compile, the accounting is unchanged)", flush=True)
        mask = np.zeros(size, np.float32)
        mask[:len(index)] = 1.0
        # Padding rows repeat example 0; their gradients are zeroed before clipping and summing.
        padded = np.zeros(size, np.int64)
        padded[:len(index)] = index
        rows = process_rows(size, *self.process)
        padded, mask = padded[rows], mask[rows]
        batch = {"image": self.images[padded], "mask": mask}
        if self.labels is not None:
            batch["label"] = self.labels[padded]
        return batch


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)
