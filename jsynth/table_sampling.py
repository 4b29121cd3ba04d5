"""``jsynth sample`` for table models: rows streamed to Parquet or CSV shards under a manifest.

The same machinery as images (``jsynth.sampling``: row i depends only on (seed, i), chunks of a
fixed size over the devices; ``jsynth.shards.write_samples``: atomic shards, a manifest, an
interrupted request resumed with the same arguments), with each shard's encoded rows decoded by
the TableTransform saved in the workdir (so no data are needed) and written by
``jsynth.tables.table_shard_bytes``. ``condition="COLUMN=VALUE"`` samples that value of a
categorical column exactly: the decoder is given that condition (CTGAN's conditional vector, the
TVAE's label) and the column takes the value, with no rejection sampling.
"""
from __future__ import annotations

import jax

from jsynth import parallel, sampling
from jsynth.configs import TABLE_FAMILIES
from jsynth.families.table_shape import TableShape
from jsynth.shards import SampleOutputError, write_samples
from jsynth.trained import load_trained
from jsynth.train.table_run import check_transform
from jsynth.workdir import read_config

DEFAULT_CHUNK = 10_000      # rows per device call: an MLP's matrix products want many rows at once
DEFAULT_SHARD = 100_000     # rows per file


def is_table_run(workdir: str) -> bool:
    """True when ``workdir`` holds a table model (tvae, ctgan)."""
    return read_config(workdir).family in TABLE_FAMILIES


def parse_condition(text: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    if not sep or not column:
        raise SampleOutputError(f"--condition {text!r}: expected COLUMN=VALUE, e.g. --condition income=>50K")
    return column, value


def sample_table_to_disk(workdir: str, out: str, *, num: int, batch_size: int | None = None, seed: int = 0,
                         condition: str | None = None, fmt: str | None = None, shard_size: int | None = None,
                         use_ema: bool = True, num_devices: int | None = None, progress: bool = True) -> dict:
    """Writes ``num`` rows of the table model in ``workdir`` to ``out``; returns the manifest.

    Args:
      batch_size: rows per device call (default 10,000, rounded to the devices).
      condition: "COLUMN=VALUE": every row has that value of that categorical column.
      fmt: "parquet" (default: keeps dtypes and categories) or "csv".
      shard_size: rows per file (default 100,000), rounded up to a multiple of batch_size.
    """
    from jsynth.tables import TableError
    from jsynth.tables.table_shards import TABLE_FORMATS, table_shard_bytes

    fmt = fmt or "parquet"
    if fmt not in TABLE_FORMATS:
        raise SampleOutputError(f"--format {fmt} is for images; {workdir} holds a table model, whose samples "
                                f"are written as {' or '.join(TABLE_FORMATS)} (e.g. --format parquet)")
    for flag, value in (("--num", num), ("--batch-size", batch_size), ("--shard-size", shard_size)):
        if value is not None and value <= 0:
            raise SampleOutputError(f"{flag} must be positive, got {value}")
    if jax.process_count() > 1:
        raise SampleOutputError("table sampling runs as one process (it is fast enough on one host); "
                                "start it without the multi-process flags")
    mesh = parallel.data_mesh(num_devices)
    devices = mesh.devices.size
    batch_size = batch_size or max(devices, DEFAULT_CHUNK // devices * devices)
    parallel.check_batch_size(batch_size, mesh)
    model = load_trained(workdir, mesh=mesh, use_ema=use_ema)
    transform = check_transform(workdir, TableShape.of(model.image_shape))
    decode = model.decode
    if condition is not None:
        column, value = parse_condition(condition)
        try:
            span_index, category = transform.condition(column, value)
        except TableError as error:
            raise SampleOutputError(f"--condition {condition}: {error}") from None
        decode = decode.with_condition(span_index, category)
    shard_size = shard_size or DEFAULT_SHARD
    shard_size = -(-shard_size // batch_size) * batch_size  # shards start on chunk boundaries
    chunk_fn = sampling.make_chunk_fn(decode, latent_dim=decode.latent_dim, chunk_size=batch_size,
                                      num_classes=0, mesh=mesh)

    def chunks(start, stop):
        return sampling.sample_chunks(chunk_fn, model.variables, seed=seed, start=start, stop=stop,
                                      chunk_size=batch_size)

    def encode(rows, labels):
        del labels
        return table_shard_bytes(transform.decode(rows), fmt)

    request = {"seed": seed, "checkpoint_step": model.step, "condition": condition, "batch_size": batch_size,
               "ema": use_ema, "kind": "table", "columns": [c.name for c in transform.columns]}
    return write_samples(out, chunks, num=num, shard_size=shard_size, request=request, fmt=fmt,
                         progress=progress, encode=encode)


def table_sample_flags(workdir: str, condition: str | None, label: int | None, sample_range) -> bool:
    """Whether ``jsynth sample`` on ``workdir`` samples a table model; refuses flags of the other kind."""
    table = is_table_run(workdir)
    if table and label is not None:
        raise SampleOutputError(f"--label is for image models; {workdir} holds a table model: "
                                "use --condition COLUMN=VALUE")
    if table and sample_range is not None:
        raise SampleOutputError("--range is for image models; a table model samples its rows in one run "
                                "(an interrupted run resumes with the same command)")
    if not table and condition is not None:
        raise SampleOutputError(f"--condition is for table models; {workdir} holds an image model: "
                                "use --label ID")
    return table
