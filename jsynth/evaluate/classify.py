"""Training and applying the evaluation classifier (``jsynth.models.classifier.Classifier``).

One recipe (``ClassifierRecipe``) and one pure step serve every classifier the evaluation trains:
the feature network, and the TSTR / TRTR / augmentation classifiers of ``utility``. The step is
``(state, batch) -> (state, metrics)``, softmax cross-entropy, Adam with a cosine-decayed learning
rate whose peak and length live in the state (``optax.inject_hyperparams``), so it is jitted once
per (architecture, image shape, devices) and reused by every training whatever its budget.

Batches are a pure function of (seed, step): each source of examples (e.g. a real subset and a
synthetic set) contributes an equal share of every batch, drawn by ``jsynth.data.batch_indices``
(epochs without replacement) or, for a source smaller than its share, uniformly with replacement.
Work is data parallel over the host's devices (one per CPU core after ``jsynth.configure_cpu``):
batch sharded, parameters replicated.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jsynth import data as jdata
from jsynth import parallel
from jsynth.evaluate.chunks import map_chunks
from jsynth.models.classifier import Classifier

INFERENCE_CHUNK = 512  # images per device call when computing logits or features


@dataclasses.dataclass(frozen=True)
class ClassifierRecipe:
    """Architecture and training budget of an evaluation classifier.

    The number of steps is ``epochs`` passes over the training examples, clamped to
    [min_steps, max_steps], unless ``steps`` fixes it.
    """

    width: int = 32
    feature_dim: int = 128
    kernel: int = 3
    batch_size: int = 128
    learning_rate: float = 1e-3
    epochs: float = 4.0
    min_steps: int = 300
    max_steps: int = 3000
    steps: int | None = None

    def __post_init__(self):
        for name in ("width", "feature_dim", "kernel", "batch_size", "min_steps", "max_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClassifierRecipe.{name} must be positive, got {getattr(self, name)}")
        if self.steps is not None and self.steps <= 0:
            raise ValueError(f"ClassifierRecipe.steps must be positive, got {self.steps}")
        if self.learning_rate <= 0 or self.epochs <= 0:
            raise ValueError("ClassifierRecipe.learning_rate and epochs must be positive")

    def model(self, num_classes: int) -> Classifier:
        return Classifier(num_classes, self.width, self.feature_dim, self.kernel)

    def num_steps(self, num_examples: int) -> int:
        if self.steps is not None:
            return self.steps
        steps = math.ceil(self.epochs * num_examples / self.batch_size)
        return int(min(max(steps, self.min_steps), self.max_steps))

    def describe(self, num_classes: int, num_examples: int) -> str:
        """Architecture plus the training recipe: everything but the data and seed that fixes the weights."""
        return (f"{self.model(num_classes).describe()}; adam lr={self.learning_rate:g} cosine-decayed, "
                f"softmax cross-entropy, batch {self.batch_size}, {self.num_steps(num_examples)} steps")


@flax.struct.dataclass
class ClassifierState:
    """Parameters and the optimizer state, which holds the schedule as data (one compile, any budget)."""

    step: jnp.ndarray            # int32 scalar: steps taken
    params: dict
    opt_state: optax.OptState    # of ``classifier_optimizer``: peak lr and total steps in ``.hyperparams``


def cosine_learning_rate(step, peak, total_steps):
    """``optax.cosine_decay_schedule(peak, total_steps)(step)``, with traced ``peak`` and ``total_steps``.

    (optax's own schedule checks ``total_steps > 0`` in Python, so it cannot take a traced length.)
    """
    progress = jnp.minimum(step, total_steps) / jnp.maximum(total_steps, 1)
    return peak * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def _cosine_decayed_adam(learning_rate, total_steps) -> optax.GradientTransformation:
    """``optax.adam(optax.cosine_decay_schedule(learning_rate, total_steps))``, traceable arguments."""
    return optax.adam(lambda count: cosine_learning_rate(count, learning_rate, total_steps))


def classifier_optimizer(learning_rate, total_steps) -> optax.GradientTransformation:
    """Adam (default betas), learning rate cosine-decayed from ``learning_rate`` to 0 over ``total_steps``.

    Both are injected hyperparameters (``optax.inject_hyperparams``): they live in the optimizer
    state as arrays, not in the compiled step, so one compile serves every budget. The schedule
    counts the optimizer's own updates (0 at the first step).
    """
    return optax.inject_hyperparams(_cosine_decayed_adam)(learning_rate=learning_rate, total_steps=total_steps)


def init_classifier_state(model: Classifier, key, image_shape, learning_rate, total_steps) -> ClassifierState:
    """A fresh state (pure; jit it with ``out_shardings`` to initialise in place)."""
    params = model.init(key, jnp.zeros((1,) + tuple(image_shape), jnp.float32))["params"]
    optimizer = classifier_optimizer(jnp.asarray(learning_rate, jnp.float32),
                                     jnp.asarray(total_steps, jnp.int32))
    return ClassifierState(jnp.zeros((), jnp.int32), params, optimizer.init(params))


def make_classifier_update(model: Classifier):
    """The pure train step ``(state, batch) -> (state, metrics)`` on a global batch.

    Softmax cross-entropy and ``classifier_optimizer``, whose peak learning rate and length are
    read from the state. ``batch`` holds ``image`` (B, H, W, C) in [0, 1] and ``label`` (B,) int32.
    """
    # The hyperparameters given here are placeholders: update() uses those in the state.
    optimizer = classifier_optimizer(1.0, 1)

    def update(state: ClassifierState, batch):
        def loss_fn(params):
            logits = model.apply({"params": params}, batch["image"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
        return new_state, {"loss": loss, "accuracy": accuracy}

    return update


def eval_mesh(batch_size: int):
    """The data mesh over as many local devices as divide ``batch_size`` evenly."""
    return parallel.data_mesh(math.gcd(batch_size, jax.local_device_count()))


@functools.lru_cache(maxsize=16)
def compiled_functions(model: Classifier, image_shape: tuple, mesh):
    """(init, update) jitted once per (architecture, image shape, mesh), shared by every training.

    ``init(key, learning_rate, total_steps)`` returns a state replicated over ``mesh``;
    ``update(state, batch)`` takes a batch sharded over it and donates the state.
    """
    rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    init = functools.partial(init_classifier_state, model, image_shape=tuple(image_shape))
    update = jax.jit(make_classifier_update(model), in_shardings=(rep, data),
                     out_shardings=(rep, rep), donate_argnums=0)
    return jax.jit(lambda key, lr, total: init(key, learning_rate=lr, total_steps=total),
                   out_shardings=rep), update


def _source_indices(step: int, share: int, n: int, seed: int, source: int) -> np.ndarray:
    if n >= share:
        return jdata.batch_indices(step, share, n, seed + 7919 * source)
    return np.random.default_rng([seed, source, step]).integers(0, n, size=share)


def train_classifier(sources: Sequence[tuple[np.ndarray, np.ndarray]], num_classes: int,
                     recipe: ClassifierRecipe, *, seed: int = 0) -> dict:
    """Trains a classifier from scratch; returns its parameters (host numpy arrays).

    Args:
      sources: one or more (images (N, H, W, C) float32 in [0, 1], labels (N,) int) pairs, all of
        the same image shape. Each contributes batch_size / len(sources) rows to every batch.
      num_classes: number of classes (labels lie in [0, num_classes)).
      recipe: architecture and budget; the step count comes from the total number of examples.
      seed: initialisation and batch order.

    Returns:
      The ``params`` pytree.
    """
    if not sources:
        raise ValueError("train_classifier needs at least one (images, labels) source")
    if recipe.batch_size % len(sources):
        raise ValueError(f"batch size {recipe.batch_size} does not split over {len(sources)} sources")
    sources = [(np.asarray(x, np.float32), np.asarray(y, np.int32)) for x, y in sources]
    shapes = {x.shape[1:] for x, _ in sources}
    if len(shapes) != 1:
        raise ValueError(f"all sources must have the same image shape, got {sorted(shapes)}")
    for x, y in sources:
        if len(x) == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(f"a source has {len(x)} images and {len(y)} labels")
    model = recipe.model(num_classes)
    steps = recipe.num_steps(sum(len(x) for x, _ in sources))
    mesh = eval_mesh(recipe.batch_size)
    init, update = compiled_functions(model, next(iter(shapes)), mesh)
    state = init(jax.random.key(seed), np.float32(recipe.learning_rate), np.int32(steps))
    share = recipe.batch_size // len(sources)
    pending = None
    for step in range(steps):
        picks = [_source_indices(step, share, len(x), seed, i) for i, (x, _) in enumerate(sources)]
        batch = {"image": np.concatenate([x[p] for (x, _), p in zip(sources, picks)]),
                 "label": np.concatenate([y[p] for (_, y), p in zip(sources, picks)])}
        # One step in flight at a time: with many queued steps, XLA:CPU's cross-device all-reduce
        # can starve for threads and abort (seen on a 2-core host). The next batch is still
        # assembled while the previous step runs.
        if pending is not None:
            jax.block_until_ready(pending)
        state, pending = update(state, parallel.shard_batch(mesh, batch))
    return jax.device_get(state.params)


@functools.lru_cache(maxsize=16)
def _compiled_apply(model: Classifier, mesh):
    rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    apply = lambda params, x: model.apply({"params": params}, x, return_features=True)  # noqa: E731
    return jax.jit(apply, in_shardings=(rep, data), out_shardings=(data, data))


def logits_and_features(model: Classifier, params, images, *, chunk_size: int = INFERENCE_CHUNK):
    """(logits (N, K), features (N, feature_dim)) float32 numpy, in fixed-shape chunks (one compile)."""
    images = np.asarray(images, np.float32)
    mesh = eval_mesh(chunk_size)
    apply = _compiled_apply(model, mesh)
    params = parallel.replicate(mesh, params)
    return map_chunks(lambda chunk, _: apply(params, parallel.shard_batch(mesh, chunk)), images, chunk_size)


def accuracy(model: Classifier, params, images, labels) -> float:
    """Share of ``images`` whose arg-max logit is their label."""
    logits, _ = logits_and_features(model, params, images)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))
