"""``jsynth pack``: any image source jsynth reads, written as a packed (ArrayRecord) set for streaming.

The format is ``jsynth.data.arrayrecord``'s. Shards are written under temporary names and renamed
when complete; ``metadata.json`` comes last, so a directory with a metadata file is a whole set,
and a packing run that is interrupted leaves nothing that could be trained from.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter

import numpy as np

from jsynth import data as jdata
from jsynth.atomic import write_atomic
from jsynth.data.arrayrecord import (FORMAT, LABELS, METADATA, RECORD, WRITER_OPTIONS, encode_record,
                                     shard_file, to_uint8)
from jsynth.errors import UserError

DEFAULT_SHARD_SIZE = 10_000


class PackError(UserError, ValueError):
    """An output directory or shard size that cannot take the packed set."""


def pack(spec: str, out: str, *, shard_size: int = DEFAULT_SHARD_SIZE, image_size: int | None = None) -> dict:
    """Writes the data ``spec`` names as ArrayRecord shards in ``out``; returns the metadata.

    Args:
      spec: a data spec (``digits``, ``mnist:DIR``, ``npz:PATH``, ``folder:DIR``).
      shard_size: records per shard file.
      image_size: for ``folder:`` data, the square size to resize to (as ``--set image_size``).

    Raises:
      PackError: a non-positive shard size, or ``out`` already holds files.
      DataError: the source cannot be read.
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    if shard_size <= 0:
        raise PackError(f"--shard-size must be positive, got {shard_size}")
    if os.path.isdir(out) and os.listdir(out):
        raise PackError(f"{out} is not empty; pack into a new directory (nothing was changed)")
    dataset = jdata.load(spec, image_size)
    images = to_uint8(dataset.images)
    labels = dataset.labels
    os.makedirs(out, exist_ok=True)
    shards = []
    for index, start in enumerate(range(0, len(images), shard_size)):
        stop = min(len(images), start + shard_size)
        name = shard_file(index)
        temporary = os.path.join(out, f".{name}.tmp")
        writer = ArrayRecordWriter(temporary, WRITER_OPTIONS)
        for i in range(start, stop):
            writer.write(encode_record(images[i], -1 if labels is None else int(labels[i])))
        writer.close()
        digest = hashlib.sha256()
        with open(temporary, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        os.replace(temporary, os.path.join(out, name))
        shards.append({"file": name, "num": stop - start, "sha256": digest.hexdigest()})
    if labels is not None:
        with open(os.path.join(out, LABELS), "wb") as f:
            np.save(f, labels.astype(np.int32), allow_pickle=False)
    counts = Counter(labels.tolist()) if labels is not None else {}
    metadata = {"format": FORMAT, "source": dataset.name, "image_shape": list(dataset.image_shape),
                "dtype": "uint8", "num": len(images), "num_classes": dataset.num_classes,
                "class_names": list(dataset.class_names),
                "class_counts": [counts.get(k, 0) for k in range(dataset.num_classes)],
                "shard_size": shard_size, "record": RECORD, "shards": shards}
    write_atomic(os.path.join(out, METADATA), json.dumps(metadata, indent=1))
    return metadata
