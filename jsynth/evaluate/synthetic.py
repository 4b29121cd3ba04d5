"""Synthetic images and labels from disk, checked and put in the real data's terms for ``jsynth eval``.

Accepts jsynth's sample directories (manifest + npz or PNG-grid shards, every sha256 checked),
any directory of .npz files, one .npz file (``x`` and optional ``y``), or a folder of PNG/JPEG
images (one sub-folder per class for labels), as other tools write them. Images become float32
NHWC in [0, 1]: uint8 is divided by 255; floats in [0, 1] are kept, and floats reaching below 0
are read as a tanh generator's [-1, 1]. Overshoots of float rounding (up to ``_SLACK``) are
clipped; anything further out, NaN, strings or an empty set is refused.

Labels are matched to the real data's classes by name: a jsynth manifest says what each label
means (``class_names`` and ``label_ids``), a folder's sub-folders are names, and bare ids are
the real data's ids (``jsynth.labels``). A label the real data does not have is an error.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from jsynth import data as jdata
from jsynth.data.pixels import class_ids, unit_images
from jsynth.errors import InputError
from jsynth.labels import label_ids

# Float samples may overshoot their range by rounding (a tanh output mapped to [0, 1] in float32).
_SLACK = 1e-3


def load_synthetic(path: str, real_class_names: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray | None]:
    """(images float32 NHWC in [0, 1], labels as indices of ``real_class_names`` or None).

    Raises:
      InputError: unreadable, empty or non-numeric samples, values out of range, labels that
        are not whole numbers or name classes the real data lacks.
    """
    from jsynth.shards import load_samples

    if not os.path.exists(path):
        raise InputError(f"--samples {path} does not exist; give a `jsynth sample` output directory, "
                         "a .npz file or an image folder")
    if os.path.isdir(path) and not _holds_samples(path):
        try:
            dataset = jdata.load_folder(path)
        except jdata.DataError as error:
            raise InputError(f"--samples {path}: {error}") from None
        names = [dataset.class_names[i] for i in dataset.labels] if dataset.labels is not None else None
        return dataset.images, None if names is None else _indices_of_names(names, real_class_names, path)
    x, y, manifest = load_samples(path)
    images = _images(np.asarray(x), path)
    if y is None:
        return images, None
    ids = _whole_numbers(np.asarray(y), len(images), path)
    if manifest is not None and manifest.get("class_names"):
        names = manifest["class_names"]
        written = np.asarray(manifest.get("label_ids", range(len(names))))
        lookup = {int(label): name for label, name in zip(written, names)}
        unknown = sorted(set(np.unique(ids).tolist()) - set(lookup))
        if unknown:
            raise InputError(f"samples in {path} carry labels {unknown[:10]} that its manifest's class_names "
                             "do not list")
        return images, _indices_of_names([lookup[int(i)] for i in ids], real_class_names, path)
    if not real_class_names:
        return images, ids.astype(np.int32)
    # Bare ids are the real data's own ids (an npz's 100..109, digits' and MNIST's 0..9).
    names_by_id = {int(i): name for i, name in zip(label_ids(real_class_names, len(real_class_names)),
                                                   real_class_names)}
    unknown = sorted(set(np.unique(ids).tolist()) - set(names_by_id))
    if unknown:
        raise InputError(f"samples in {path} carry labels {unknown[:10]}, which are not ids of the real data's "
                         f"classes ({', '.join(list(real_class_names)[:20])})")
    return images, _indices_of_names([names_by_id[int(i)] for i in ids], real_class_names, path)


def _holds_samples(path: str) -> bool:
    from jsynth.shards import MANIFEST

    return os.path.exists(os.path.join(path, MANIFEST)) or any(f.endswith(".npz") for f in os.listdir(path))


def _images(x: np.ndarray, path: str) -> np.ndarray:
    return unit_images(x, f"samples in {path}", InputError, slack=_SLACK)


def _whole_numbers(y: np.ndarray, n: int, path: str) -> np.ndarray:
    return class_ids(y, n, f"labels in {path}", InputError)


def _indices_of_names(names: Sequence[str], real_class_names: Sequence[str], path: str) -> np.ndarray:
    """The real data's class index of each sample's class name."""
    if not real_class_names:
        raise InputError(f"samples in {path} are labelled but the real data has no labels: evaluate "
                         "against labelled data, or drop the labels")
    position = {name: i for i, name in enumerate(real_class_names)}
    missing = sorted(set(names) - set(position))
    if missing:
        raise InputError(f"samples in {path} are labelled {', '.join(map(str, missing[:10]))}, which the real "
                         f"data's classes ({', '.join(list(real_class_names)[:20])}) do not include")
    return np.array([position[name] for name in names], np.int32)
