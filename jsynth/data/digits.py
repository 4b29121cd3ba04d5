"""scikit-learn's bundled 8x8 handwritten digits: the default, download-free data set."""
import numpy as np

from jsynth.data.dataset import Dataset

# Pixel values in the UCI digits data are counts of set bits in 4x4 blocks: 0..16.
_MAX_VALUE = 16.0


def load_digits() -> Dataset:
    """Load the 1,797 UCI optical digits shipped inside scikit-learn.

    Returns:
      A Dataset of shape (1797, 8, 8, 1) in [0, 1] with 10 classes.
    """
    import sklearn.datasets  # here, not at the top: importing scikit-learn takes ~2 s

    raw = sklearn.datasets.load_digits()
    images = (np.asarray(raw.images, np.float32) / _MAX_VALUE)[..., None]
    labels = np.asarray(raw.target, np.int32)
    return Dataset(
        images=images,
        labels=labels,
        num_classes=10,
        name="digits",
        class_names=tuple(str(i) for i in range(10)),
    )
