"""``jsynth bench tabular``: the table models' speed on one table (README, "Tables").

Records (one dict each, ``emit``ted as measured):
  transform   seconds to read the table, fit the TableTransform (mixtures on a subsample) and encode it
  train       per model (ctgan, tvae): seconds per epoch (N // batch_size steps) after the first
              epoch, which holds the compile and is reported apart
  sample      per model: seconds to sample ``rows`` rows and decode them to a DataFrame in memory
              (what ``CTGAN.sample`` returns), the chunks computed on every device

``benchmarks/tabular_vs_ctgan.py`` runs this beside the reference ``ctgan`` package.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import jax
import numpy as np
import pandas as pd

from jsynth import configs, parallel, sampling


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_tabular(data: str, *, target: str | None = None, epochs: int = 3, batch_size: int = 500,
                  rows: int = 1_000_000, models=("ctgan", "tvae"), chunk_size: int = 50_000,
                  steps_per_call: int = 1, emit: Callable[[dict], None] = print) -> list[dict]:
    """Times the transform, ``epochs`` epochs of each model and sampling ``rows`` rows; returns the records.

    ``steps_per_call``: k > 1 runs k steps in one compiled call (``lax.scan`` over k batches).
    """
    from jsynth.tables import TableTransform, infer_columns, read_table
    from jsynth.tables.table_data import table_data
    from jsynth.train import loop, table_run
    from jsynth.families.table_shape import table_shape

    records = []

    def record(**fields):
        fields = {"bench": "tabular", "data": data, "devices": jax.device_count(), **fields}
        records.append(fields)
        emit(fields)

    frame, read_s = _timed(lambda: read_table(data))
    columns = infer_columns(frame, None, target)
    transform, fit_s = _timed(lambda: TableTransform.fit(frame, columns))
    table, encode_s = _timed(lambda: table_data(frame, transform, target, data))
    record(what="transform", rows=len(frame), columns=len(frame.columns), encoded_width=transform.output_dim,
           read_s=round(read_s, 3), fit_s=round(fit_s, 3), encode_s=round(encode_s, 3))
    dataset = table_run.TableDataset(table, table_shape(transform, table.rows, target))
    steps_per_epoch = len(frame) // batch_size
    for model in models:
        config = configs.TrainConfig(model=model, data=data, target=target, batch_size=batch_size,
                                     steps=epochs * steps_per_epoch, progress=False)
        setup = loop.prepare(config, dataset)
        family, mesh = setup.family, setup.mesh
        state = jax.jit(family.init, out_shardings=parallel.replicated(mesh))(jax.random.key(0))
        batches = table_run.batch_source(setup, None, slice(None))
        step_fn = _step_fn(family, mesh, steps_per_call)
        times = []
        for epoch in range(epochs):
            start = time.perf_counter()
            state, metrics = _epoch(step_fn, state, batches, mesh, epoch * steps_per_epoch, steps_per_epoch,
                                    steps_per_call)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
        later = times[1:] or times
        record(what="train", model=model, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
               steps_per_call=steps_per_call, epochs=epochs, first_epoch_s=round(times[0], 3),
               epoch_s=round(statistics.median(later), 3), epoch_times=[round(t, 3) for t in times])
        decode, variables = family.for_sampling(jax.device_get(family.sample_variables(state)))
        size = -(-chunk_size // mesh.devices.size) * mesh.devices.size
        chunk_fn = sampling.make_chunk_fn(decode, latent_dim=decode.latent_dim, chunk_size=size,
                                          num_classes=0, mesh=mesh)
        sampling_s = []
        for repeat in range(2):  # the first includes the compile
            start = time.perf_counter()
            parts = [chunk.images for chunk in sampling.sample_chunks(chunk_fn, variables, seed=repeat, start=0,
                                                                     stop=rows, chunk_size=size)]
            sampled = transform.decode(np.concatenate(parts))
            sampling_s.append(time.perf_counter() - start)
        assert isinstance(sampled, pd.DataFrame) and len(sampled) == rows
        record(what="sample", model=model, rows=rows, chunk_size=size, first_s=round(sampling_s[0], 3),
               sample_s=round(sampling_s[1], 3))
    return records


def _step_fn(family, mesh, k: int):
    """The jitted step, or k steps in one call: ``lax.scan`` of the same update over k stacked batches."""
    from jax.sharding import NamedSharding, PartitionSpec as P
    from jsynth.parallel import DATA_AXIS, replicated
    from jsynth.train.steps import make_step
    if k == 1:
        return make_step(family, mesh)

    def k_steps(state, batches, keys):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return jax.lax.scan(lambda s, xs: family.update(s, *xs), state, (batches, keys))

    rep = replicated(mesh)
    return jax.jit(k_steps, in_shardings=(rep, NamedSharding(mesh, P(None, DATA_AXIS)), rep),
                   out_shardings=(rep, rep), donate_argnums=0)


def _epoch(step_fn, state, batches, mesh, first: int, count: int, k: int):
    metrics, previous = None, None
    if k == 1:
        for step in range(first, first + count):
            previous = metrics
            state, metrics = step_fn(state, parallel.shard_batch(mesh, batches(step)), jax.random.key(step))
            jax.block_until_ready(previous)  # two steps in flight, as the loop keeps them
        return state, metrics
    for group in range(first, first + count - k + 1, k):
        stacked = [batches(step) for step in range(group, group + k)]
        batch = {name: np.stack([b[name] for b in stacked]) for name in stacked[0]}
        keys = jax.random.split(jax.random.key(group), k)
        previous = metrics
        state, metrics = step_fn(state, _shard_stacked(mesh, batch), keys)
        jax.block_until_ready(previous)
    return state, metrics


def _shard_stacked(mesh, batch):
    """(k, B, ...) arrays with the batch axis (1) split over the mesh's data axis."""
    from jax.sharding import NamedSharding, PartitionSpec as P
    from jsynth.parallel import DATA_AXIS
    sharding = NamedSharding(mesh, P(None, DATA_AXIS))
    return {name: jax.device_put(value, sharding) for name, value in batch.items()}


def tabular_command(data: str, *, target: str | None = None, epochs: int = 3, batch_size: str | None = None,
                    rows: int | None = None, steps_per_call: int = 1, as_json: bool = False,
                    out: str | None = None) -> list[dict]:
    """``jsynth bench tabular``: prints each record (``--json``: one JSON object per line) and,
    with ``out``, appends them to a JSON-lines file."""
    import json

    from jsynth.tables import is_table_spec
    if not is_table_spec(data):
        from jsynth.errors import InputError
        raise InputError(f"jsynth bench tabular times a table: give --data csv:PATH or parquet:PATH, got {data!r}")
    sink = open(out, "a") if out else None

    def emit(record):
        print(json.dumps(record) if as_json else "  ".join(f"{k}={v}" for k, v in record.items()), flush=True)
        if sink:
            sink.write(json.dumps(record) + "\n")
            sink.flush()

    try:
        return bench_tabular(data, target=target, epochs=epochs, batch_size=int(batch_size or 500),
                             rows=rows or 1_000_000, steps_per_call=steps_per_call, emit=emit)
    finally:
        if sink:
            sink.close()
