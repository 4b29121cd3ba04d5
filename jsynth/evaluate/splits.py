"""The real data an evaluation compares against, split deterministically into train and held-out.

* ``train``: the records the generator learned from. The feature network and the TRTR and
  augmentation classifiers are trained on it, and privacy metrics ask how close synthetic samples
  come to it ("members").
* ``heldout``: real data the generator did not see. It is the reference set of FD and
  precision/recall/density/coverage, the test set of every classifier, and the privacy baseline
  ("non-members").

How the two are found, in order:

1. ``holdout_spec`` given: ``train = load(data_spec)``, ``heldout = load(holdout_spec)``.
2. ``mnist:DIR`` (no split named) with both train-* and t10k-* files in DIR: the train split and
   the test split, MNIST's own protocol.
3. Otherwise one data set is split here: a fixed permutation (``default_rng(seed)``) sends
   ``holdout_fraction`` of it to ``heldout``. A generator trained on the whole set has seen that
   held-out part; ``generator_warnings`` says so, because privacy metrics are then meaningless
   (nothing unseen is left to compare with) and TSTR is measured on seen data.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jsynth import data as jdata
from jsynth.data import Dataset, DataError
from jsynth.errors import InputError

DEFAULT_HOLDOUT_FRACTION = 0.2


@dataclasses.dataclass(frozen=True, eq=False)
class RealSplits:
    """Train and held-out real data, and how they were obtained.

    Attributes:
      train: the generator's training records (as far as the evaluation knows).
      heldout: real data the generator did not see (unless a warning says otherwise).
      source: name of the data set that was split in two, or None when two sets were loaded.
      method: "given holdout", "mnist train/test" or "fixed split".
    """

    train: Dataset
    heldout: Dataset
    source: str | None
    method: str

    def protocol(self) -> dict:
        return {"method": self.method, "train": self.train.name, "train_examples": len(self.train),
                "heldout": self.heldout.name, "heldout_examples": len(self.heldout)}


def _subset(dataset: Dataset, index: np.ndarray, name: str) -> Dataset:
    labels = None if dataset.labels is None else dataset.labels[index]
    return Dataset(dataset.images[index], labels, dataset.num_classes, name, dataset.class_names)


def split_dataset(dataset: Dataset, holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
                  seed: int = 0) -> RealSplits:
    """Splits one data set: a fixed permutation sends ``holdout_fraction`` of it to ``heldout``."""
    if not 0.0 < holdout_fraction < 1.0:
        raise InputError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    n = len(dataset)
    n_heldout = int(round(n * holdout_fraction))
    if not 0 < n_heldout < n:
        raise DataError(f"{dataset.name} has {n} images: too few to hold out {holdout_fraction:.0%}")
    order = np.random.default_rng(seed).permutation(n)
    percent = f"{holdout_fraction:.0%}"
    heldout = _subset(dataset, np.sort(order[:n_heldout]), f"{dataset.name} [held-out {percent}, seed {seed}]")
    train = _subset(dataset, np.sort(order[n_heldout:]), f"{dataset.name} [train, {percent} held out, seed {seed}]")
    return RealSplits(train, heldout, dataset.name, "fixed split")


def _mnist_both_splits(data_spec: str, image_size: int | None) -> tuple[Dataset, Dataset] | None:
    scheme, _, arg = data_spec.partition(":")
    if scheme != "mnist" or arg.endswith((":train", ":test")):
        return None
    try:
        return (jdata.load(f"{data_spec}:train", image_size), jdata.load(f"{data_spec}:test", image_size))
    except DataError:
        return None


def real_splits(data_spec: str, *, holdout_spec: str | None = None, image_size: int | None = None,
                holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION, seed: int = 0) -> RealSplits:
    """The train and held-out real data named by a data spec (see the module docstring).

    Args:
      data_spec: a ``jsynth.data.load`` spec, e.g. ``digits`` or ``mnist:DIR``.
      holdout_spec: a second spec naming the held-out data explicitly.
      image_size: as for ``jsynth.data.load`` (folder: data only).
      holdout_fraction: share held out when one data set is split here.
      seed: seeds that split.

    Returns:
      RealSplits with images of equal shape in both parts.
    """
    if holdout_spec is not None:
        splits = RealSplits(jdata.load(data_spec, image_size), jdata.load(holdout_spec, image_size),
                            None, "given holdout")
    elif (both := _mnist_both_splits(data_spec, image_size)) is not None:
        splits = RealSplits(both[0], both[1], None, "mnist train/test")
    else:
        splits = split_dataset(jdata.load(data_spec, image_size), holdout_fraction, seed)
    if splits.train.image_shape != splits.heldout.image_shape:
        raise DataError(f"train ({splits.train.name}, {splits.train.image_shape}) and held-out "
                        f"({splits.heldout.name}, {splits.heldout.image_shape}) images differ in shape")
    return splits


def generator_warnings(splits: RealSplits, generator_data: str | None) -> list[str]:
    """What is wrong with the protocol given the name of the data the generator was trained on.

    Args:
      splits: the real data of the evaluation.
      generator_data: ``Dataset.name`` of the generator's training data (a run's checkpoint
        metadata records it), or None when unknown (then ``train`` is assumed).

    Returns:
      Human-readable warnings; empty when train is the generator's data and held-out is unseen.
    """
    if generator_data is None:
        return [f"the generator's training data is not known; the evaluation assumes it was "
                f"{splits.train.name} and that {splits.heldout.name} was not seen"]
    if generator_data == splits.train.name:
        return []
    if generator_data in (splits.source, splits.heldout.name):
        return [f"the generator was trained on {generator_data}, which includes the held-out "
                f"part {splits.heldout.name}: no unseen real data is left, so dcr_share, nndr and "
                f"mia_auc cannot detect memorisation (members and non-members were both trained "
                f"on), and TSTR is tested on data the generator saw. Train the generator on a "
                f"split that leaves data out (or pass a holdout the generator never saw) for "
                f"meaningful privacy numbers"]
    return [f"the generator was trained on {generator_data}, not on the evaluation's train split "
            f"{splits.train.name}; privacy metrics measure closeness to the latter"]
