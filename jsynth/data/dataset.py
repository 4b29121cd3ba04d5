"""The in-memory data set every loader returns.

All sources (digits, MNIST, npz, image folders) are converted to one layout
so that models, training and metrics never need to know where data came from:
float32 NHWC images in [0, 1] and optional int32 labels.
"""
import dataclasses
import hashlib

import numpy as np

from jsynth.data.errors import DataError


# eq=False: the default generated __eq__ would compare arrays element-wise and
# raise "truth value of an array is ambiguous"; identity equality is what we want.
@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Images (and optional labels) held in memory.

    Attributes:
      images: float32 array of shape (N, H, W, C), values in [0, 1], C in {1, 3}.
      labels: int32 array of shape (N,), or None when the data is unlabelled.
      num_classes: 0 when unlabelled; otherwise the number of classes (every
        label lies in [0, num_classes)).
      name: human-readable origin, e.g. ``"digits"`` or ``"mnist:/data (test)"``;
        recorded in checkpoints and reports.
      class_names: one name per class (folder names for ``folder:`` data, else
        ``str(i)``); empty when unlabelled.
    """

    images: np.ndarray
    labels: np.ndarray | None
    num_classes: int
    name: str
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        where = f"data set {self.name!r}"
        images = self.images
        if not isinstance(images, np.ndarray) or images.dtype != np.float32:
            raise DataError(
                f"{where}: images must be a float32 numpy array, got "
                f"{type(images).__name__} of dtype {getattr(images, 'dtype', None)}; "
                "convert with .astype(np.float32) after scaling to [0, 1]."
            )
        if images.ndim != 4:
            raise DataError(
                f"{where}: images must be 4-D (N, H, W, C), got shape {images.shape}."
            )
        if images.shape[0] == 0:
            raise DataError(f"{where}: holds no images; at least one is needed.")
        if images.shape[3] not in (1, 3):
            raise DataError(
                f"{where}: images must have 1 (grey) or 3 (RGB) channels, "
                f"got shape {images.shape}."
            )
        # min/max rather than a boolean mask: one cheap pass, and NaN fails both tests.
        lo, hi = float(images.min()), float(images.max())
        if not (lo >= 0.0 and hi <= 1.0):
            raise DataError(
                f"{where}: image values must lie in [0, 1], found range [{lo}, {hi}]."
            )
        self._check_labels(where)

    def _check_labels(self, where: str) -> None:
        """Validate labels, num_classes and class_names against each other."""
        labels = self.labels
        if labels is None:
            if self.num_classes != 0 or self.class_names:
                raise DataError(
                    f"{where}: unlabelled data must have num_classes=0 and no "
                    f"class_names, got num_classes={self.num_classes}."
                )
            return
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int32:
            raise DataError(
                f"{where}: labels must be an int32 numpy array, got "
                f"{type(labels).__name__} of dtype {getattr(labels, 'dtype', None)}."
            )
        if labels.shape != (len(self.images),):
            raise DataError(
                f"{where}: labels must have shape ({len(self.images)},) to match the "
                f"images, got {labels.shape}."
            )
        if self.num_classes < 1:
            raise DataError(f"{where}: labelled data needs num_classes >= 1.")
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.num_classes:
            raise DataError(
                f"{where}: labels must lie in [0, {self.num_classes}), "
                f"found range [{lo}, {hi}]."
            )
        if self.class_names and len(self.class_names) != self.num_classes:
            raise DataError(
                f"{where}: {len(self.class_names)} class_names given for "
                f"{self.num_classes} classes."
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self.images.shape[1:])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def content_digest(dataset: Dataset) -> str:
    """sha256 of the images, labels and class names: what a checkpoint records of its data, so a
    resume on changed files under the same path is caught (MNIST: ~0.2 s)."""
    digest = hashlib.sha256()
    digest.update(repr((dataset.images.shape, dataset.class_names)).encode())
    digest.update(np.ascontiguousarray(dataset.images).data)
    if dataset.labels is not None:
        digest.update(np.ascontiguousarray(dataset.labels).data)
    return digest.hexdigest()
