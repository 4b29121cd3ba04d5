"""Usefulness of labelled synthetic data as training data for a classifier.

* TSTR (train on synthetic, test on real; Esteban et al. 2017; the "classification accuracy score"
  of Ravuri & Vinyals 2019): a classifier trained on the labelled synthetic set, tested on real
  held-out data.
* TRTR (train on real, test on real): the same classifier, recipe, step count and number of
  training examples, trained on real training data instead. ``utility_ratio = TSTR / TRTR``: 1 means
  the synthetic set is as good a training set as as many real examples.
* Augmentation lift: a classifier trained on a small real subset (e.g. 1 % and 10 % of the labelled
  training data) alone, and on the same subset plus the synthetic set (every batch half real, half
  synthetic); ``lift`` is the accuracy gained.

Every classifier has the same architecture and the same fixed number of steps (equal compute), so
the comparisons are about the data alone. Subsets are drawn by a fixed permutation
(``default_rng(seed)``), so every model evaluated against the same real data is compared with the
same real baselines; those baselines depend on real data only, so their accuracies are cached
under a hash of their inputs (see ``cached_accuracy``).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from jsynth.atomic import write_atomic
from jsynth.errors import InputError
from jsynth.evaluate.classify import ClassifierRecipe, accuracy, train_classifier
from jsynth.evaluate.feature_net import array_digest, cache_root

# Fixed budget: 500 steps of batch 128 (~1 epoch of MNIST) whatever the training-set size.
UTILITY_RECIPE = ClassifierRecipe(steps=500)


def real_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a fixed random subset of ``size`` examples, every class present if possible.

    One example of each class is taken first (so a 1 % subset of a 10-class set cannot miss a
    class), the rest uniformly from what is left.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    size = int(min(max(size, 1), n))
    order = np.random.default_rng(seed).permutation(n)
    _, first = np.unique(labels[order], return_index=True)
    firsts = order[np.sort(first)][:size]
    left = np.ones(n, bool)
    left[firsts] = False
    rest = order[left[order]][: size - firsts.size]
    return np.sort(np.concatenate([firsts, rest]))


def cached_accuracy(key_parts: Sequence, compute: Callable[[], float], cache_dir: str | None) -> float:
    """``compute()``, remembered in $JSYNTH_CACHE/utility/<sha256 of key_parts>.json.

    Args:
      key_parts: strings that determine the result (digests of the data, recipe, seed).
      compute: the (expensive) function.
      cache_dir: overrides the cache root; "" disables the cache.
    """
    if cache_dir == "":
        return compute()
    key = hashlib.sha256("\n".join(map(str, key_parts)).encode()).hexdigest()
    root = os.path.join(cache_root(cache_dir), "utility")
    path = os.path.join(root, f"{key}.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                return float(json.load(f)["accuracy"])
        except (ValueError, KeyError, OSError):
            pass  # unreadable entry: recompute and replace it
    value = compute()
    os.makedirs(root, exist_ok=True)
    write_atomic(path, json.dumps({"accuracy": value, "key": [str(p) for p in key_parts]}))
    return value


def _accuracy_of(sources, test, num_classes, recipe, seed) -> float:
    params = train_classifier(sources, num_classes, recipe, seed=seed)
    return accuracy(recipe.model(num_classes), params, *test)


def tstr_trtr(synthetic: tuple[np.ndarray, np.ndarray], train: tuple[np.ndarray, np.ndarray],
              test: tuple[np.ndarray, np.ndarray], num_classes: int, *,
              recipe: ClassifierRecipe = UTILITY_RECIPE, seed: int = 0,
              cache_dir: str | None = None) -> dict:
    """Train-on-synthetic and train-on-real accuracies on the same real test set.

    Args:
      synthetic: (images, labels) generated, labels in [0, num_classes).
      train: (images, labels) real training data; TRTR uses a fixed subset of as many examples
        as there are synthetic ones (all of it if fewer).
      test: (images, labels) real held-out data.
      num_classes: number of classes.
      recipe: classifier architecture and budget (give it fixed ``steps``: equal compute).
      seed: classifier initialisation, batch order and the real subset.
      cache_dir: cache root for the TRTR accuracy ("" disables caching).

    Returns:
      {"tstr_accuracy", "trtr_accuracy", "utility_ratio", "trtr_train_examples"}.
    """
    size = min(len(synthetic[0]), len(train[0]))
    index = real_subset(train[1], size, seed)
    real = (train[0][index], train[1][index])
    tstr = _accuracy_of([synthetic], test, num_classes, recipe, seed)
    key = ("trtr", array_digest(*real), array_digest(*test), recipe, num_classes, seed)
    trtr = cached_accuracy(key, lambda: _accuracy_of([real], test, num_classes, recipe, seed), cache_dir)
    return {"tstr_accuracy": tstr, "trtr_accuracy": trtr,
            "utility_ratio": tstr / trtr if trtr > 0 else float("nan"), "trtr_train_examples": size}


def augmentation_lift(synthetic: tuple[np.ndarray, np.ndarray], train: tuple[np.ndarray, np.ndarray],
                      test: tuple[np.ndarray, np.ndarray], num_classes: int, *,
                      fractions: Sequence[float] = (0.01, 0.1), recipe: ClassifierRecipe = UTILITY_RECIPE,
                      seed: int = 0, cache_dir: str | None = None) -> list[dict]:
    """Accuracy of a classifier on a small real subset, without and with the synthetic data.

    Args:
      synthetic, train, test, num_classes, recipe, seed, cache_dir: as for ``tstr_trtr``.
      fractions: shares of the real training data to keep, each in (0, 1].

    Returns:
      One dict per fraction: {"fraction", "real_examples", "real_only", "real_plus_synthetic", "lift"}.
    """
    rows = []
    for fraction in fractions:
        if not 0.0 < fraction <= 1.0:
            raise InputError(f"augmentation fractions must be in (0, 1], got {fraction}")
        index = real_subset(train[1], int(round(fraction * len(train[1]))), seed)
        real = (train[0][index], train[1][index])
        key = ("augment-real-only", array_digest(*real), array_digest(*test), recipe, num_classes, seed)
        alone = cached_accuracy(key, lambda: _accuracy_of([real], test, num_classes, recipe, seed), cache_dir)
        mixed = _accuracy_of([real, synthetic], test, num_classes, recipe, seed)
        rows.append({"fraction": fraction, "real_examples": int(index.size), "real_only": alone,
                     "real_plus_synthetic": mixed, "lift": mixed - alone})
    return rows
