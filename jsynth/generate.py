"""``jsynth sample`` as a library call: a trained run's samples streamed to disk as shards."""
from __future__ import annotations

import jax
from jax.experimental import multihost_utils

from jsynth import parallel, sampling
from jsynth.labels import index_of_id, label_ids
from jsynth.sample_range import write_piece as sample_range_piece
from jsynth.shards import (SampleOutputError, merge_manifests, partial_manifest_name, read_manifest,
                           write_samples)
from jsynth.trained import load_trained


def sample_to_disk(workdir: str, out: str, *, num: int, batch_size: int = 256, seed: int = 0,
                   label: int | None = None, fmt: str = "npz", shard_size: int | None = None,
                   use_ema: bool = True, num_devices: int | None = None, progress: bool = True,
                   sample_range: tuple[int, int] | None = None) -> dict:
    """Writes ``num`` samples of the run in ``workdir`` to ``out``; returns the manifest.

    Args:
      batch_size: samples per device call (the chunk); must divide over the devices.
      label: a class for every sample (conditional models), as the data labelled it (an npz
        file's id, or the class index of other data: see ``jsynth.labels``); None gives balanced
        classes (sample i has class index i % num_classes).
      fmt: "npz" (default) or "png" (one image grid per shard, labels in the manifest).
      shard_size: samples per file, rounded up to a multiple of batch_size
        (default: 10,000 for npz, 100 for png).
      sample_range: (start, stop) writes only the shards of samples start..stop-1, listed in
        OUT/manifest.range-START-STOP.json (one job-array task; ``jsynth.sample_range``), and
        returns that piece's manifest; ``jsynth manifest merge`` joins the pieces.
    """
    for flag, value in (("--num", num), ("--batch-size", batch_size), ("--shard-size", shard_size)):
        if value is not None and value <= 0:
            raise SampleOutputError(f"{flag} must be positive, got {value}")
    # Each process samples its own shards on its own devices: sample i depends only on (seed, i),
    # so processes need no collectives, and a multi-process request writes the same files.
    multi_process = jax.process_count() > 1
    mesh = parallel.local_mesh() if multi_process else parallel.data_mesh(num_devices)
    parallel.check_batch_size(batch_size, mesh)
    model = load_trained(workdir, mesh=mesh, use_ema=use_ema)
    if label is not None:
        if not model.num_classes:
            raise SampleOutputError(f"--label needs a conditional model; {workdir} was trained "
                                    "without --conditional")
        class_index = index_of_id(label, model.class_names, model.num_classes)
        if class_index is None:
            known = label_ids(model.class_names, model.num_classes).tolist()
            shown = ", ".join(map(str, known[:20])) + (" ..." if len(known) > 20 else "")
            raise SampleOutputError(f"--label {label} is not a class of {workdir}; its classes are {shown}")
    shard_size = shard_size or (10_000 if fmt == "npz" else 100)
    shard_size = -(-shard_size // batch_size) * batch_size  # shards start on chunk boundaries
    chunk_fn = sampling.make_chunk_fn(model.decode, latent_dim=model.latent_dim, chunk_size=batch_size,
                                      num_classes=model.num_classes, mesh=mesh, device_rows=model.device_rows)
    label_value = sampling.BALANCED if label is None else class_index
    ids = label_ids(model.class_names, model.num_classes)

    def chunks(start, stop):
        for chunk in sampling.sample_chunks(chunk_fn, model.variables, seed=seed, start=start, stop=stop,
                                            chunk_size=batch_size, label=label_value):
            # Shards hold the data's own ids (e.g. 100..109), not the model's class indices.
            yield chunk if chunk.labels is None else chunk._replace(labels=ids[chunk.labels])

    request = {"seed": seed, "checkpoint_step": model.step, "label": label,
               "batch_size": batch_size, "ema": use_ema, "image_shape": list(model.image_shape),
               "num_classes": model.num_classes, "class_names": list(model.class_names),
               "label_ids": ids.tolist(), **({"dp": model.dp} if model.dp else {})}
    if sample_range is not None:
        return sample_range_piece(out, chunks, sample_range, num=num, shard_size=shard_size,
                                  request=request, fmt=fmt, model=model, progress=progress)
    if not multi_process:
        return write_samples(out, chunks, num=num, shard_size=shard_size, request=request, fmt=fmt,
                             progress=progress)
    index, count = jax.process_index(), jax.process_count()
    shards = range(index, -(-num // shard_size), count)
    write_samples(out, chunks, num=num, shard_size=shard_size, request=request, fmt=fmt,
                  shard_indices=shards, manifest_name=partial_manifest_name(index),
                  progress=progress and index == 0)
    multihost_utils.sync_global_devices("jsynth sample: all shards written")
    manifest = merge_manifests(out, count) if index == 0 else None
    multihost_utils.sync_global_devices("jsynth sample: manifest merged")
    return manifest if manifest is not None else read_manifest(out)
