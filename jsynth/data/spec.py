"""Turn a data spec string (as typed on the command line) into a Dataset.

Spec forms:
  digits              scikit-learn's bundled 8x8 digits (no download)
  mnist:DIR           MNIST-style IDX files in DIR (train split if present, else test)
  mnist:DIR:train     the train-* files in DIR
  mnist:DIR:test      the t10k-* files in DIR
  npz:PATH            arrays x (and optional y) in a .npz archive
  folder:DIR          PNG/JPEG images, one sub-folder per class or unlabelled
  arrayrecord:DIR     a set `jsynth pack` wrote: opened lazily, training streams it
  csv:PATH, parquet:PATH  tables: read by jsynth.tables (load_table_data), never as images here
Paths may be relative (to the working directory) and may start with ~.
"""
import os
from collections.abc import Callable
from pathlib import Path

from jsynth.data.arrayrecord import open_packed
from jsynth.data.dataset import Dataset
from jsynth.data.digits import load_digits
from jsynth.data.errors import DataError
from jsynth.data.folder import load_folder
from jsynth.data.mnist import load_mnist
from jsynth.data.npz import load_npz

_FORMS = (
    "digits",
    "mnist:DIR",
    "mnist:DIR:train",
    "mnist:DIR:test",
    "npz:PATH",
    "folder:DIR",
    "arrayrecord:DIR",
)


def _path(spec: str, arg: str) -> Path:
    """The absolute path an argument names, so data set names are unambiguous in logs."""
    if not arg:
        scheme = spec.partition(":")[0]
        raise DataError(f"Data spec {spec!r} names no path; expected e.g. {scheme}:./data.")
    return Path(os.path.abspath(os.path.expanduser(arg)))


def _digits(spec: str, arg: str | None, image_size: int | None) -> Dataset:
    if arg is not None:
        raise DataError(f"Data spec {spec!r}: 'digits' takes no argument; use just 'digits'.")
    return load_digits()


def _mnist(spec: str, arg: str | None, image_size: int | None) -> Dataset:
    split = None
    # Only a trailing ':train' / ':test' is a split, so directories may contain ':'.
    for name in ("train", "test"):
        if arg and arg.endswith(":" + name):
            arg, split = arg[: -len(name) - 1], name
            break
    return load_mnist(_path(spec, arg or ""), split)


def _npz(spec: str, arg: str | None, image_size: int | None) -> Dataset:
    return load_npz(_path(spec, arg or ""))


def _folder(spec: str, arg: str | None, image_size: int | None) -> Dataset:
    return load_folder(_path(spec, arg or ""), image_size=image_size)


def _arrayrecord(spec: str, arg: str | None, image_size: int | None) -> Dataset:
    return open_packed(str(_path(spec, arg or "")))  # no image read until .images is asked for


def _table(spec: str, arg: str | None, image_size: int | None) -> Dataset:
    raise DataError(f"--data {spec} is a table: the table models (--model tvae, --model ctgan) and "
                    "`jsynth eval --samples` read it; this command takes images.")


# Scheme -> loader(spec, argument after the first ':' or None, image_size).
_LOADERS: dict[str, Callable[[str, str | None, int | None], Dataset]] = {
    "digits": _digits,
    "mnist": _mnist,
    "npz": _npz,
    "folder": _folder,
    "arrayrecord": _arrayrecord,
    "csv": _table,
    "parquet": _table,
}


def load(spec: str, image_size: int | None = None) -> Dataset:
    """Load the data set a spec string names.

    Args:
      spec: one of the forms in the module docstring, e.g. ``"mnist:~/data/mnist:test"``.
      image_size: for ``folder:`` data, resize every image to this square size.
        Other sources are never resized: for them image_size must be None or
        equal their native size (a mismatch raises instead of being ignored).

    Returns:
      The Dataset.

    Raises:
      DataError: unknown scheme, missing path, or any loader error.
    """
    scheme, sep, arg = spec.partition(":")
    loader = _LOADERS.get(scheme)
    if loader is None:
        raise DataError(
            f"Unknown data spec {spec!r}; valid forms: {', '.join(_FORMS)}."
        )
    dataset = loader(spec, arg if sep else None, image_size)
    height, width, _ = dataset.image_shape
    if image_size is not None and (height, width) != (image_size, image_size):
        raise DataError(
            f"Data spec {spec!r} has {height}x{width} images but image_size={image_size} "
            "was requested; only folder: data is resized. Drop image_size or convert the data."
        )
    return dataset
