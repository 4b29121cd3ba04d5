"""Images (and optional labels) from a numpy ``.npz`` archive.

The archive holds ``x`` (required) and ``y`` (optional); other arrays are
ignored. Loading never unpickles: object arrays are refused, because
unpickling an untrusted file can run arbitrary code.

Accepted images ``x``:
  * shape (N, H, W) (grey) or (N, H, W, C) with C in {1, 3};
  * uint8 -> divided by 255;
  * bool -> 0.0 / 1.0 (binarised data);
  * float with every value in [0, 1] -> used as is;
  * float with values in [-1, 1] and some negative -> mapped to [0, 1] by
    (x + 1) / 2, the inverse of the usual tanh output range. An array whose
    values all lie in [0, 1] is always read as [0, 1], never as [-1, 1].
Anything else (other integer types, NaN/inf, other ranges) raises DataError.
"""
import zipfile
from pathlib import Path

import numpy as np

from jsynth.data.dataset import Dataset
from jsynth.data.errors import DataError
from jsynth.data.pixels import class_ids, unit_images


def _open(path: Path) -> dict[str, np.ndarray]:
    """Read x and y (when present) from the archive without unpickling."""
    if path.is_dir():
        raise DataError(f"npz: names a file, but {path} is a directory; for a directory of images "
                        f"use folder:{path}, or give the path of the .npz archive in it.")
    if not path.is_file():
        raise DataError(f"npz file {path} does not exist; pass the path of a .npz archive.")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path} holds a single .npy array; expected a .npz archive with arrays "
                "'x' (and optionally 'y'): np.savez(path, x=..., y=...)."
            )
        with loaded as archive:
            if "x" not in archive.files:
                raise DataError(
                    f"npz file {path} has no array 'x'; it holds {sorted(archive.files)}. "
                    "Save images as x (and labels as y): np.savez(path, x=..., y=...)."
                )
            return {key: archive[key] for key in ("x", "y") if key in archive.files}
    except DataError:
        raise
    # ValueError covers "Object arrays cannot be loaded when allow_pickle=False"
    # and files that are not numpy at all (numpy then assumes pickle and refuses);
    # BadZipFile/OSError/EOFError cover corrupt or truncated archives.
    except (ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(
            f"npz file {path} could not be read ({e}). It must be a numpy .npz archive of "
            "plain numeric arrays (no object arrays: pickle is never loaded)."
        ) from e


def _images(x: np.ndarray, path: Path) -> np.ndarray:
    """Validate x and return float32 NHWC images in [0, 1]."""
    return unit_images(x, f"npz file {path}: x", DataError)


def _labels(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    """Validate y and return int32 labels."""
    y = class_ids(y, n, f"npz file {path}: y", DataError)
    if y.min() < 0 or y.max() > np.iinfo(np.int32).max:
        raise DataError(f"npz file {path}: class ids must be non-negative and fit in int32, found range "
                        f"[{y.min()}, {y.max()}].")
    return y.astype(np.int32)


def load_npz(path: str | Path) -> Dataset:
    """Load images ``x`` and optional labels ``y`` from a .npz archive.

    Args:
      path: the archive (written with ``np.savez`` / ``np.savez_compressed``).

    Returns:
      A Dataset in [0, 1] (see the module docstring for the accepted forms);
      when y is present, labelled with one class per distinct id (labels 0..K-1 in the
      order of the ids, ``class_names`` the ids themselves).

    Raises:
      DataError: unreadable archive, missing x, object arrays, unsupported
        shapes, dtypes or value ranges, or labels that do not fit.
    """
    path = Path(path).expanduser()
    arrays = _open(path)
    images = _images(arrays["x"], path)
    name = f"npz:{path}"
    if "y" not in arrays:
        return Dataset(images=images, labels=None, num_classes=0, name=name)
    ids = _labels(arrays["y"], len(images), path)
    # Classes are the ids present, in order: ids 100..109 are 10 classes, and one id of 2**31 - 2
    # is one class (a model's label embedding never grows with the ids' values). The ids stay
    # the class names, kept in checkpoints and written back as the labels of samples.
    present, labels = np.unique(ids, return_inverse=True)
    return Dataset(
        images=images,
        labels=labels.astype(np.int32).reshape(-1),
        num_classes=len(present),
        name=name,
        class_names=tuple(str(int(i)) for i in present),
    )
