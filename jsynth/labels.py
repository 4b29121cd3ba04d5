"""Class ids as users know them versus the class indices 0..K-1 a model is conditioned on.

Loaders number the classes present (``Dataset.class_names`` keeps what each index stands for:
an npz file's ids such as 100..109, an image folder's sub-folder names). Samples carry the
user's ids back: where every class name is an integer, the ``y`` of a sample shard is that
integer; otherwise it is the index, and the manifest's ``class_names`` say what it means.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def label_ids(class_names: Sequence[str], num_classes: int) -> np.ndarray:
    """The label written for each class index: the integer names, or the indices themselves."""
    if len(class_names) == num_classes and all(_is_int(name) for name in class_names):
        return np.array([int(name) for name in class_names], np.int64)
    return np.arange(num_classes, dtype=np.int64)


def index_of_id(label: int, class_names: Sequence[str], num_classes: int) -> int | None:
    """The class index whose label id is ``label`` (see ``label_ids``), or None."""
    found = np.flatnonzero(label_ids(class_names, num_classes) == label)
    return int(found[0]) if found.size else None


def _is_int(name: str) -> bool:
    try:
        int(name)
    except ValueError:
        return False
    return True
