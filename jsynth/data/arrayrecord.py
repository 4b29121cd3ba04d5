"""Packed data sets: ArrayRecord shards of uint8 images and labels, written by ``jsynth pack``.

DIR/metadata.json          {"format", "source", "image_shape", "num", "num_classes", "class_names",
                            "class_counts", "shard_size", "record", "shards": [{"file", "num", "sha256"}]}
DIR/data-00000.array_record ...   one record per image (``RECORD``); record i of the set is record
                                  i - k*shard_size of shard k
DIR/labels.npy             int32 labels in record order (absent for unlabelled data): a small index,
                           so that a run can be checked against its data without reading the shards

ArrayRecord (group_size 1) gives random access to any record, which is what lets a training run
read only the records of its own batch rows (``jsynth.data.stream``) and never the whole set.
Images are stored as uint8: sources that are 8-bit (MNIST, PNG/JPEG folders, uint8 npz) are kept
exactly; float sources are rounded to the nearest of 256 levels.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os

import numpy as np

from jsynth.data.dataset import Dataset
from jsynth.data.errors import DataError

FORMAT = "jsynth.arrayrecord/1"
METADATA = "metadata.json"
LABELS = "labels.npy"
RECORD = "int32 little-endian label (-1: unlabelled) then the image's H*W*C uint8 pixels, row-major HWC"
WRITER_OPTIONS = "group_size:1,snappy"  # one record per chunk: a random access decodes one record;
# snappy: measured on MNIST, 1.7x faster random reads than the default brotli at 1.2x its size
_LABEL = np.dtype("<i4")


def shard_file(index: int) -> str:
    return f"data-{index:05d}.array_record"


def encode_record(image: np.ndarray, label: int) -> bytes:
    """One record (``RECORD``): the label, then the uint8 pixels."""
    return np.asarray(label, _LABEL).tobytes() + np.ascontiguousarray(image, np.uint8).tobytes()


def decode_records(records, image_shape) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, H, W, C), int32 labels (n,)) of a list of records."""
    size = int(np.prod(image_shape)) + _LABEL.itemsize
    flat = np.frombuffer(b"".join(records), np.uint8)
    if flat.size != size * len(records):
        raise DataError(f"a packed record is not {size} bytes (label + {tuple(image_shape)} pixels): the "
                        "shards do not match their metadata.json; pack the data again")
    rows = flat.reshape(len(records), size)
    labels = rows[:, :_LABEL.itemsize].copy().view(_LABEL).reshape(-1).astype(np.int32)
    return rows[:, _LABEL.itemsize:].reshape((len(records),) + tuple(image_shape)), labels


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] float images as uint8; exact for 8-bit sources (values k/255)."""
    return np.rint(np.asarray(images, np.float32) * np.float32(255.0)).astype(np.uint8)


@dataclasses.dataclass(frozen=True, eq=False)
class PackedDataset:
    """A packed set opened for streaming: its metadata and shard paths; no image is read here.

    It answers what the training loop asks of a data set (name, image_shape, num_classes,
    class_names, labels, len) so a run can be planned, checked and resumed without loading the
    images; ``jsynth.train.stream`` reads the batches. Code that needs the images as one array
    (``jsynth eval``, in-loop FD) reads ``images``, which loads the whole set once.
    """

    directory: str
    metadata: dict

    @property
    def name(self) -> str:
        return f"arrayrecord:{self.directory}"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.metadata["image_shape"])

    @property
    def num_classes(self) -> int:
        return int(self.metadata["num_classes"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["class_names"])

    @property
    def paths(self) -> list[str]:
        return [os.path.join(self.directory, s["file"]) for s in self.metadata["shards"]]

    @functools.cached_property
    def labels(self) -> np.ndarray | None:
        """The labels in record order (memory-mapped: 4 bytes an image, read on demand), or None."""
        if not self.num_classes:
            return None
        return np.load(os.path.join(self.directory, LABELS), mmap_mode="r", allow_pickle=False)

    def __len__(self) -> int:
        return int(self.metadata["num"])

    @functools.cached_property
    def images(self) -> np.ndarray:
        """The whole set as float32 in [0, 1] (the same values as the other 8-bit sources give)."""
        from grain.sources import ArrayRecordDataSource

        verify_shards(self.directory, self.metadata)
        records = ArrayRecordDataSource(self.paths).__getitems__(list(range(len(self))))
        pixels = decode_records(records, self.image_shape)[0].astype(np.float32)
        pixels /= 255.0
        return pixels

    def content_digest(self) -> str:
        """A digest of the set: its shards' sha256 (checked by ``open_packed``) and its metadata."""
        return hashlib.sha256(json.dumps(self.metadata, sort_keys=True).encode()).hexdigest()


def read_metadata(directory: str) -> dict:
    """DIR/metadata.json, checked against the files beside it.

    Raises:
      DataError: no metadata, another format, a missing shard or labels file.
    """
    where = os.path.join(directory, METADATA)
    if not os.path.isfile(where):
        raise DataError(f"{directory} holds no {METADATA}: it is not a packed data set; write one with "
                        "`jsynth pack --data SPEC --out DIR`")
    try:
        with open(where) as f:
            metadata = json.load(f)
    except ValueError as error:
        raise DataError(f"{where} is not valid JSON ({error}); pack the data again") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise DataError(f"{where} is not a {FORMAT} packed set (format "
                        f"{metadata.get('format') if isinstance(metadata, dict) else None!r}); pack the data again")
    for shard in metadata["shards"]:
        if os.path.basename(shard["file"]) != shard["file"] or not os.path.isfile(os.path.join(directory, shard["file"])):
            raise DataError(f"{directory} lacks the shard {shard['file']} that {METADATA} lists; copy the "
                            "whole packed directory, or pack the data again")
    if metadata["num_classes"] and not os.path.isfile(os.path.join(directory, LABELS)):
        raise DataError(f"{directory} lacks {LABELS}, which labelled packed data needs; pack the data again")
    return metadata


def verify_shards(directory: str, metadata: dict) -> None:
    """Checks every shard's sha256 against the metadata (reads every byte once)."""
    from jsynth.shards import sha256_file  # the one file digest (lazy: jsynth.data stays import-light)
    for shard in metadata["shards"]:
        if sha256_file(os.path.join(directory, shard["file"])) != shard["sha256"]:
            raise DataError(f"{directory}/{shard['file']} does not match its sha256 in {METADATA}: it "
                            "changed after packing; pack the data again")


def open_packed(directory: str) -> PackedDataset:
    """The packed set in ``directory``, opened for streaming (its metadata checked, no image read).

    Raises:
      DataError: not a packed set, or a file it lists is missing.
    """
    directory = os.path.abspath(os.path.expanduser(directory))
    return PackedDataset(directory, read_metadata(directory))
