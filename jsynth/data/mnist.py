"""MNIST-style data sets stored as IDX files in one directory.

Works for MNIST, Fashion-MNIST, KMNIST and anything else distributed as
``{train,t10k}-{images,labels}-idx{3,1}-ubyte[.gz]``.
"""
import re
from pathlib import Path

import numpy as np

from jsynth.data.dataset import Dataset
from jsynth.data.errors import DataError
from jsynth.data.idx import read_idx

# Split name -> file-name prefix used by the original distribution.
_PREFIXES = {"train": "train", "test": "t10k"}
# All MNIST-family data sets label with class ids 0..9.
_NUM_CLASSES = 10


def _pattern(prefix: str, kind: str, ndim: int) -> re.Pattern:
    """Regex for one file: e.g. train-images-idx3-ubyte, train-images-approx-idx3-ubyte.gz.

    Besides the official '-idx3' spelling a '.idx3' separator is accepted,
    because widely shared copies (e.g. on Kaggle) rename the files that way.
    """
    return re.compile(rf"^{prefix}-{kind}.*[-.]idx{ndim}-ubyte(\.gz)?$")


def _describe(prefix: str, kind: str, ndim: int) -> str:
    return f"{prefix}-{kind}*-idx{ndim}-ubyte[.gz]"


def _find(directory: Path, names: list[str], prefix: str, kind: str, ndim: int) -> Path | None:
    """Return the file for (prefix, kind), or None when there is none.

    When several files match (e.g. both the .gz and the decompressed copy),
    the official name wins, then uncompressed before gzip, then alphabetical,
    so the choice is deterministic.
    """
    pattern = _pattern(prefix, kind, ndim)
    official = f"{prefix}-{kind}-idx{ndim}-ubyte"
    matches = [n for n in names if pattern.match(n)]
    if not matches:
        return None
    best = min(matches, key=lambda n: (not n.startswith(official), n.endswith(".gz"), n))
    return directory / best


def _missing_error(directory: Path, names: list[str], wanted: list[str]) -> DataError:
    shown = ", ".join(sorted(names)[:20]) or "nothing"
    if len(names) > 20:
        shown += f", ... ({len(names)} entries)"
    return DataError(
        f"MNIST directory {directory} lacks {', '.join(wanted)}; it contains: {shown}. "
        "Point mnist: at the folder holding the IDX files (e.g. .../MNIST/raw)."
    )


def load_mnist(directory: str | Path, split: str | None = None) -> Dataset:
    """Load one split of an MNIST-style data set.

    Args:
      directory: folder containing the IDX files (gzipped or raw).
      split: "train" (files ``train-*``), "test" (files ``t10k-*``) or None,
        meaning train when its image file exists, else test.

    Returns:
      A Dataset of shape (N, rows, cols, 1) in [0, 1] (pixels / 255) with
      10 classes, named ``"mnist:{directory} ({split})"``.

    Raises:
      DataError: missing directory or files, malformed IDX files, images not
        3-D uint8, or image and label counts that disagree.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(
            f"MNIST directory {directory} does not exist or is not a directory; "
            "pass the folder holding the *-idx3-ubyte[.gz] files."
        )
    if split is not None and split not in _PREFIXES:
        raise DataError(
            f"Unknown MNIST split {split!r} for {directory}; valid splits: "
            f"{', '.join(_PREFIXES)} (or none: train if present, else test)."
        )
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    guessed = split is None
    if guessed:
        split = "train" if _find(directory, names, "train", "images", 3) else "test"
    prefix = _PREFIXES[split]
    images_path = _find(directory, names, prefix, "images", 3)
    labels_path = _find(directory, names, prefix, "labels", 1)
    wanted = [
        _describe(prefix, kind, ndim)
        for kind, ndim, found in (("images", 3, images_path), ("labels", 1, labels_path))
        if found is None
    ]
    if guessed and images_path is None:
        # Neither split's images exist: say so, not just that the test files are missing.
        wanted.insert(0, _describe("train", "images", 3))
    if wanted:
        raise _missing_error(directory, names, wanted)

    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"MNIST image file {images_path} must hold 3-D uint8 data (count, rows, cols), "
            f"got shape {images.shape} of {images.dtype}."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"MNIST label file {labels_path} must hold 1-D integer data, "
            f"got shape {labels.shape} of {labels.dtype}."
        )
    if len(images) != len(labels):
        raise DataError(
            f"MNIST files disagree: {images_path.name} has {len(images)} images but "
            f"{labels_path.name} has {len(labels)} labels; use files of the same split."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= _NUM_CLASSES):
        raise DataError(
            f"MNIST label file {labels_path} has labels in [{labels.min()}, {labels.max()}]; "
            f"expected class ids 0..{_NUM_CLASSES - 1}."
        )
    # Divide in float32 directly: a float64 intermediate would double peak memory.
    pixels = images.astype(np.float32)
    pixels /= 255.0
    return Dataset(
        images=pixels[..., None],
        labels=labels.astype(np.int32),
        num_classes=_NUM_CLASSES,
        name=f"mnist:{directory} ({split})",
        class_names=tuple(str(i) for i in range(_NUM_CLASSES)),
    )
