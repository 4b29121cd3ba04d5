"""Training batches streamed from a packed set through a Grain pipeline.

The order is the in-memory path's: the global batch of step s is ``batch_indices(s, ...)`` (a
pure function of (seed, step), a fresh seeded permutation each epoch, i.e. a global shuffle),
and each process reads only its own rows of it (``process_rows``), so processes read disjoint
records and together the whole batch. Because the order is a function of the step, a resumed
run starts the pipeline at its checkpoint's step and needs no iterator state in the checkpoint,
and a packed run trains bitwise like the same 8-bit data held in memory.

Grain maps steps to batches (``MapDataset.range(start, steps).map(read)``); its threads read
and decode the next batches ahead while the devices train (``ReadOptions``), each read a random
access to exactly the records of this process's rows (ArrayRecord, group size 1). Batches stay
uint8 on the host and across the host-to-device copy (4x fewer bytes than float32); the devices
scale them through a 256-entry table computed on the host with the same operations as the
in-memory sources (``u / 255`` in float32, then the model's range), so the values are bitwise
those of in-memory training, which XLA's own division (a multiply by the reciprocal) would not be.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jsynth import parallel
from jsynth.data import batch_indices, to_model_range
from jsynth.data.arrayrecord import PackedDataset, decode_records

READ_THREADS = 4      # Grain threads reading and decoding batches ahead of the devices
PREFETCH_BATCHES = 4  # batches read ahead (each a batch_size // processes slice)
# A directory: each process appends, per batch it reads, the step and the record indices
# (process-I.bin, int64 rows [step, index...]): a check of which records each process read.
RECORD_LOG = "JSYNTH_RECORD_LOG"


def scale_table(data_range: str) -> np.ndarray:
    """float32 value of each uint8 pixel in the model's range, as the in-memory sources compute it."""
    table = np.arange(256, dtype=np.uint8).astype(np.float32)
    table /= 255.0
    return np.asarray(to_model_range(table, data_range), np.float32)


class PackedBatches:
    """The device batches of steps ``start .. steps-1`` of a run on packed data, in order.

    ``next(batches)`` is the global batch of the next step, sharded over ``mesh`` and scaled to
    the model's range; ``records_read`` counts the records this process has read.
    """

    def __init__(self, packed: PackedDataset, *, mesh, batch_size: int, seed: int, rows: slice,
                 start: int, steps: int, data_range: str, conditional: bool,
                 read_threads: int = READ_THREADS, prefetch: int = PREFETCH_BATCHES):
        import grain  # here, not at the top: importing grain takes seconds, and only packed runs need it
        from grain.sources import ArrayRecordDataSource

        source = ArrayRecordDataSource(packed.paths)
        shape, n = packed.image_shape, len(packed)
        self.records_read = 0
        log_dir = os.environ.get(RECORD_LOG)
        self._log = (os.path.join(log_dir, f"process-{jax.process_index()}.bin") if log_dir else None)

        def read(step):
            index = batch_indices(step, batch_size, n, seed)[rows]
            images, labels = decode_records(source.__getitems__(index.tolist()), shape)
            return step, index, {"image": images, "label": labels} if conditional else {"image": images}

        pipeline = grain.MapDataset.range(start, steps).map(read)
        options = grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch)
        self._batches = iter(pipeline.to_iter_dataset(options))
        self._mesh = mesh
        self._table = jax.device_put(scale_table(data_range), parallel.replicated(mesh))

    def __iter__(self):
        return self

    def __next__(self):
        step, index, batch = next(self._batches)
        self.records_read += len(index)
        if self._log:
            with open(self._log, "ab") as f:
                f.write(np.concatenate([[step], index]).astype(np.int64).tobytes())
        return _scale(self._table, parallel.shard_batch(self._mesh, batch))


@jax.jit
def _scale(table, batch):
    """uint8 images -> the model's range, by table lookup (each device its own rows)."""
    return {**batch, "image": jnp.take(table, batch["image"].astype(jnp.int32), axis=0)}


def packed_batches(setup, rows: slice, start: int) -> PackedBatches | None:
    """The stream of a run's batches when its data is packed; None for in-memory data.

    Args:
      setup: the loop's RunSetup (config, dataset, family, num_classes, mesh).
      rows: this process's rows of each global batch (``process_rows``).
      start: the first step to read (a resumed run's checkpoint step).
    """
    if not isinstance(setup.dataset, PackedDataset):
        return None
    config = setup.config
    return PackedBatches(setup.dataset, mesh=setup.mesh, batch_size=config.batch_size, seed=config.seed,
                         rows=rows, start=start, steps=config.steps, data_range=setup.family.data_range,
                         conditional=bool(setup.num_classes))
