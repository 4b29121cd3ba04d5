"""The feature network: a classifier jsynth trains on the real labelled data, saved and reused.

Inception weights cannot be downloaded here, so fidelity metrics (FD, precision/recall,
density/coverage) are measured in the penultimate layer of a small CNN
(``jsynth.models.classifier.Classifier``) trained on the real training split itself. Its weights
are a pure function of (training images, training labels, architecture + recipe, seed), so they are
cached under the sha256 of exactly those, as stylegan2-ada caches its reference statistics:

  $JSYNTH_CACHE (default ~/.cache/jsynth)/feature_nets/<sha256>/
      params/        Orbax checkpoint of the parameters
      info.json      hash, architecture, training data, steps, test accuracy

The entry is written into a temporary folder and renamed into place, so a reader never sees half
of one, and two processes racing to train the same net both end with the same files. Every report
names the hash, the architecture and the test accuracy (the "protocol"): numbers measured with
different feature nets do not compare.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jsynth.data import Dataset
from jsynth.errors import InputError
from jsynth.evaluate.classify import ClassifierRecipe, accuracy, logits_and_features, train_classifier
from jsynth.models.classifier import Classifier

CACHE_ENV = "JSYNTH_CACHE"
KEY_VERSION = b"jsynth-feature-net-v1"
# 4 epochs of batch 128, at least 300 and at most 3000 steps: 1,875 steps and ~98.8 % test accuracy
# on MNIST (about 90 s on a busy 2-core CPU); 300 steps (27 epochs) on the 1,437 training digits.
FEATURE_NET_RECIPE = ClassifierRecipe()


def cache_root(cache_dir: str | None = None) -> str:
    """Where cached feature nets live: ``cache_dir``, else $JSYNTH_CACHE, else ~/.cache/jsynth."""
    root = cache_dir or os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "jsynth")
    return os.path.abspath(os.path.expanduser(root))


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 of arrays' dtype, shape and bytes (C order): equal digests mean equal arrays."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def feature_net_key(images: np.ndarray, labels: np.ndarray, architecture: str, seed: int) -> str:
    """The cache key: sha256 of (images bytes, labels bytes, architecture description, seed)."""
    digest = hashlib.sha256(KEY_VERSION)
    digest.update(array_digest(np.asarray(images, np.float32), np.asarray(labels, np.int32)).encode())
    digest.update(architecture.encode())
    digest.update(str(int(seed)).encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A trained feature network and what identifies it.

    Attributes:
      model: the Classifier module.
      params: its parameters (host arrays).
      key: sha256 cache key (hex); ``key[:12]`` is what reports show.
      info: the cache entry's info.json, plus ``test_accuracy`` on the test set it was asked for.
    """

    model: Classifier
    params: dict
    key: str
    info: dict

    def features(self, images) -> np.ndarray:
        """(N, feature_dim) float32 penultimate-layer activations of images in [0, 1]."""
        return logits_and_features(self.model, self.params, images)[1]

    def predict(self, images) -> np.ndarray:
        """(N,) int arg-max class of each image."""
        return np.argmax(logits_and_features(self.model, self.params, images)[0], axis=1)

    def protocol(self) -> dict:
        """What a report must name so that its numbers can be compared (or not)."""
        keys = ("architecture", "train_data", "train_examples", "steps", "seed", "test_data",
                "test_examples", "test_accuracy")
        return {"hash": self.key[:12], "sha256": self.key, **{k: self.info.get(k) for k in keys}}


def _abstract_params(model: Classifier, image_shape) -> dict:
    shapes = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1,) + tuple(image_shape)))["params"],
                            jax.random.key(0))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), shapes)


def _load_entry(path: str, model: Classifier, image_shape) -> tuple[dict, dict]:
    with open(os.path.join(path, "info.json")) as f:
        info = json.load(f)
    with ocp.StandardCheckpointer() as checkpointer:
        params = checkpointer.restore(os.path.join(path, "params"), _abstract_params(model, image_shape))
    return jax.device_get(params), info


def _save_entry(root: str, key: str, params: dict, info: dict) -> str:
    """Writes the entry into a temporary folder and renames it into place (atomic)."""
    final = os.path.join(root, key)
    tmp = os.path.join(root, f".{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(os.path.join(tmp, "params"), params)
        with open(os.path.join(tmp, "info.json"), "w") as f:
            json.dump(info, f, indent=1, sort_keys=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same net first: keep theirs
            if not os.path.exists(os.path.join(final, "info.json")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_or_train(train: Dataset, test: Dataset | None = None, *, recipe: ClassifierRecipe = FEATURE_NET_RECIPE,
                  seed: int = 0, cache_dir: str | None = None, progress: bool = True) -> FeatureNet:
    """The feature net of ``train``: loaded from the cache, or trained and cached.

    Args:
      train: labelled real images the net is trained on (the training split).
      test: labelled real images it is tested on (the held-out split); its accuracy is reported.
      recipe: architecture and training budget (part of the key).
      seed: initialisation and batch order (part of the key).
      cache_dir: overrides $JSYNTH_CACHE / ~/.cache/jsynth.
      progress: print a line to stderr when training.

    Returns:
      The FeatureNet; ``info["test_accuracy"]`` is None when no test set is given.

    Raises:
      ValueError: ``train`` has no labels (a classifier needs them).
    """
    if train.labels is None:
        raise InputError(f"the feature network is a classifier trained on labelled real data, but "
                         f"{train.name} has no labels (for folder: data, put each class in a sub-folder)")
    model = recipe.model(train.num_classes)
    architecture = recipe.describe(train.num_classes, len(train))
    key = feature_net_key(train.images, train.labels, architecture, seed)
    root = os.path.join(cache_root(cache_dir), "feature_nets")
    path = os.path.join(root, key)
    if os.path.exists(os.path.join(path, "info.json")):
        params, info = _load_entry(path, model, train.image_shape)
        info["cached"] = True
    else:
        os.makedirs(root, exist_ok=True)
        steps = recipe.num_steps(len(train))
        if progress:
            print(f"feature net {key[:12]}: training on {len(train)} images of {train.name} "
                  f"({steps} steps); cached in {path}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        params = train_classifier([(train.images, train.labels)], train.num_classes, recipe, seed=seed)
        info = {"hash": key, "architecture": architecture, "train_data": train.name,
                "train_examples": len(train), "image_shape": list(train.image_shape),
                "num_classes": train.num_classes, "steps": steps, "seed": seed,
                "train_seconds": round(time.perf_counter() - started, 1)}
        if test is not None:
            info.update(_test_fields(test, model, params))
        _save_entry(root, key, params, info)
        info["cached"] = False
    if test is not None and info.get("test_digest") != _test_digest(test):
        info.update(_test_fields(test, model, params))  # asked about another test set than cached
    if test is None:
        for name in ("test_data", "test_examples", "test_accuracy", "test_digest"):
            info.pop(name, None)
    return FeatureNet(model, params, key, info)


def _test_digest(test: Dataset) -> str:
    return array_digest(test.images, *([] if test.labels is None else [test.labels]))


def _test_fields(test: Dataset, model: Classifier, params) -> dict:
    if test.labels is None:
        return {"test_data": test.name, "test_examples": len(test), "test_accuracy": None,
                "test_digest": _test_digest(test)}
    return {"test_data": test.name, "test_examples": len(test), "test_digest": _test_digest(test),
            "test_accuracy": accuracy(model, params, test.images, test.labels)}
