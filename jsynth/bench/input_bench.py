"""``jsynth bench input``: images/s of the training input pipeline, packed vs in-memory data.

Both contenders deliver what the training step receives: the global batch of each step (the
``batch_indices`` order) in the model's range, sharded over the devices, and a batch counts
once it is on them (``block_until_ready``). In memory: the float32 images indexed on the host and
copied over; packed: ``jsynth.train.stream.PackedBatches`` (Grain threads reading ArrayRecord
records, uint8 across, scaled on the devices). The data is packed into a temporary directory
first (``jsynth pack``), so both read the same images. Timed alternately (``timing.interleave``),
medians reported. Neither trains, so this is the pipeline's own ceiling: if it is far above the
training step's rate, the accelerator is not waiting for input.
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import jax

from jsynth import data as jdata, parallel
from jsynth.bench import timing
from jsynth.data.arrayrecord import open_packed
from jsynth.pack import pack
from jsynth.train.stream import READ_THREADS, PackedBatches


def _in_memory(dataset, mesh, batch_size: int, steps: int, data_range: str) -> Callable[[int], object]:
    images = jdata.to_model_range(dataset.images, data_range)
    labels = dataset.labels

    def run(start: int):
        batch = None
        for step in range(start, start + steps):
            index = jdata.batch_indices(step, batch_size, len(dataset), 0)
            host = {"image": images[index]} if labels is None else {"image": images[index], "label": labels[index]}
            batch = parallel.shard_batch(mesh, host)
        return jax.block_until_ready(batch)

    return run


def _packed(directory: str, mesh, batch_size: int, steps: int, data_range: str, conditional: bool,
            read_threads: int) -> Callable[[int], object]:
    packed = open_packed(directory)

    def run(start: int):
        # A fresh pipeline from step `start`, as a resumed run builds it: its start-up is timed too.
        batches = PackedBatches(packed, mesh=mesh, batch_size=batch_size, seed=0, rows=slice(0, batch_size),
                                start=start, steps=start + steps, data_range=data_range,
                                conditional=conditional, read_threads=read_threads)
        batch = None
        for batch in batches:
            pass
        return jax.block_until_ready(batch)

    return run


def run_input(spec: str = "digits", batch_sizes=(256,), steps: int = 50, devices=(None,), rounds: int = 5,
              read_threads: int = READ_THREADS, emit: Callable[[dict], None] = print) -> list[dict]:
    """Times both pipelines for each batch size and device count; emits and returns the records."""
    dataset = jdata.load(spec)
    records = []
    with tempfile.TemporaryDirectory(prefix="jsynth-bench-input-") as root:
        started = time.perf_counter()
        packed_dir = os.path.join(root, "packed")
        pack(spec, packed_dir)
        pack_s = time.perf_counter() - started
        for count in devices:
            mesh = parallel.data_mesh(count)
            for batch_size in batch_sizes:
                parallel.check_batch_size(batch_size, mesh)
                runners = {
                    "in_memory": _in_memory(dataset, mesh, batch_size, steps, "tanh"),
                    "packed": _packed(packed_dir, mesh, batch_size, steps, "tanh",
                                      dataset.labels is not None, read_threads)}
                # Each repetition reads the next steps (new batches, as training does).
                positions = {name: iter(range(0, 10**9, steps)) for name in runners}
                times = timing.interleave({name: (lambda r=r, p=positions[name]: r(next(p)))
                                           for name, r in runners.items()}, rounds)
                for name in runners:
                    seconds = timing.median(times[name])
                    record = {"bench": "input", "arch": None, "source": name, "data": dataset.name,
                              "image_shape": list(dataset.image_shape), "examples": len(dataset),
                              "batch_size": batch_size, "num": batch_size * steps,
                              "devices": int(mesh.devices.size),
                              "dtype": "uint8" if name == "packed" else "float32",
                              "read_threads": read_threads if name == "packed" else None,
                              "images_per_s": round(batch_size * steps / seconds, 1),
                              "samples_per_s": round(batch_size * steps / seconds, 1),
                              "seconds_median": round(seconds, 4),
                              "seconds_all": [round(t, 4) for t in times[name]],
                              "pack_s": round(pack_s, 3), "compile_s": None, "flops_per_sample": 0,
                              "achieved_gflops": 0.0, "peak_gflops": None, "mfu": None}
                    emit(record)
                    records.append(record)
    return records
