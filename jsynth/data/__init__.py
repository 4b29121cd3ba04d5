"""Data loading for jsynth: every source becomes one in-memory ``Dataset``.

A data set is named by a spec string (``load(spec)``):

  digits              scikit-learn's bundled 8x8 digits, 1,797 images (no download)
  mnist:DIR           MNIST-style IDX files in DIR, gzipped or raw
                      (train split if its image file exists, else test)
  mnist:DIR:train     the train-{images,labels}-* files in DIR
  mnist:DIR:test      the t10k-{images,labels}-* files in DIR
  npz:PATH            a .npz archive with images x and optional labels y
  folder:DIR          PNG/JPEG files; one sub-folder per class, or unlabelled

Paths may be relative and may start with ~. Whatever the source, images are
float32 NHWC in [0, 1] and labels int32 (or None). ``to_model_range`` maps them
to the range a model trains in. ``batch_indices`` gives each training step's
batch as a pure function of (seed, step), so resumed runs see the same data.
Every user-facing problem raises ``DataError`` with a message saying what to fix.
"""
from jsynth.data.batches import batch_indices, data_position, epoch_permutation, process_rows
from jsynth.data.dataset import Dataset, content_digest
from jsynth.data.digits import load_digits
from jsynth.data.errors import DataError
from jsynth.data.folder import load_folder
from jsynth.data.idx import read_idx
from jsynth.data.mnist import load_mnist
from jsynth.data.model_range import from_model_range, to_model_range
from jsynth.data.npz import load_npz
from jsynth.data.spec import load

__all__ = [
    "Dataset",
    "content_digest",
    "DataError",
    "load",
    "load_digits",
    "load_mnist",
    "load_npz",
    "load_folder",
    "read_idx",
    "batch_indices",
    "epoch_permutation",
    "data_position",
    "process_rows",
    "to_model_range",
    "from_model_range",
]
