"""The evaluation classifier and the cached feature network (bundled digits only: fast on 2 cores)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jsynth import parallel
from jsynth.evaluate import classify, feature_net, real_splits, utility
from jsynth.models.classifier import Classifier, num_stages


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # One cache for the whole session (test_eval uses the same folder), never ~/.cache.
    return str(tmp_path_factory.getbasetemp() / "jsynth-cache")


@pytest.fixture(scope="module")
def digits():
    return real_splits("digits")


def test_classifier_shapes_and_stages():
    assert [num_stages(s, s) for s in (8, 16, 28, 32, 64)] == [1, 2, 2, 3, 4]
    for shape in ((8, 8, 1), (28, 28, 1), (64, 64, 3)):
        model = Classifier(num_classes=7, width=4, feature_dim=16)
        x = jnp.zeros((2,) + shape)
        variables = jax.eval_shape(model.init, jax.random.key(0), x)
        logits, features = jax.eval_shape(lambda v: model.apply(v, x, return_features=True), variables)
        assert logits.shape == (2, 7) and features.shape == (2, 16)


@pytest.mark.slow
def test_train_step_is_pure_and_the_loss_falls(digits):
    # The shipped, jitted step of the feature net's recipe (its compile is shared with the trainings).
    recipe = feature_net.FEATURE_NET_RECIPE
    model = recipe.model(10)
    mesh = classify.eval_mesh(recipe.batch_size)
    init, update = classify.compiled_functions(model, digits.train.image_shape, mesh)
    batch = {"image": digits.train.images[:128], "label": digits.train.labels[:128]}
    batch = parallel.shard_batch(mesh, batch)
    fresh = lambda: init(jax.random.key(0), np.float32(3e-3), np.int32(30))  # noqa: E731
    first, metrics0 = update(fresh(), batch)
    again, _ = update(fresh(), batch)  # pure: the same inputs give bitwise the same outputs
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), first, again)))
    state = first
    for _ in range(29):
        state, metrics = update(state, batch)
    assert int(state.step) == 30
    assert float(metrics["loss"]) < 0.25 * float(metrics0["loss"])
    hyperparams = state.opt_state.hyperparams  # the schedule is data in the state
    assert float(hyperparams["learning_rate"]) == pytest.approx(3e-3) and int(hyperparams["total_steps"]) == 30
    compiles = update._cache_size()
    update(init(jax.random.key(1), np.float32(1e-2), np.int32(500)), batch)  # another budget
    assert update._cache_size() == compiles


def test_optimizer_is_optax_adam_on_the_cosine_schedule_for_any_budget():
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
             for _ in range(9)]  # more steps than either budget: the rate stays at 0 after the end

    def descend(optimizer):
        p, s = params, optimizer.init(params)
        for g in grads:
            u, s = optimizer.update(g, s, p)
            p = optax.apply_updates(p, u)
        return p

    run = jax.jit(lambda lr, total: descend(classify.classifier_optimizer(lr, total)))
    for lr, total in ((2e-3, 6), (5e-2, 3)):
        expected = descend(optax.adam(optax.cosine_decay_schedule(lr, total)))
        got = run(np.float32(lr), np.int32(total))
        for name in params:
            np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), rtol=1e-6, atol=1e-7)
    assert run._cache_size() == 1  # both budgets through one compile


def test_cosine_learning_rate_matches_optax():
    schedule = optax.cosine_decay_schedule(2e-3, 40)
    for step in (0, 1, 17, 40, 55):
        assert float(classify.cosine_learning_rate(step, 2e-3, 40)) == pytest.approx(float(schedule(step)),
                                                                                      rel=1e-5, abs=1e-12)


@pytest.mark.slow
def test_feature_net_is_trained_once_then_loaded_from_the_cache(digits, cache):
    net = feature_net.load_or_train(digits.train, digits.heldout, cache_dir=cache, progress=False)
    assert net.info["test_accuracy"] >= 0.95  # 1,438 training digits, 359 held out
    again = feature_net.load_or_train(digits.train, digits.heldout, cache_dir=cache, progress=False)
    assert again.key == net.key and again.info["cached"]
    np.testing.assert_array_equal(again.features(digits.heldout.images), net.features(digits.heldout.images))
    entries = os.listdir(os.path.join(cache, "feature_nets"))
    assert net.key in entries and not [e for e in entries if ".tmp" in e]  # written atomically
    assert {"params", "info.json"} <= set(os.listdir(os.path.join(cache, "feature_nets", net.key)))
    protocol = net.protocol()
    assert protocol["hash"] == net.key[:12] and "Classifier(" in protocol["architecture"]
    assert protocol["test_accuracy"] == net.info["test_accuracy"]


def test_cache_key_covers_images_labels_architecture_and_seed(digits):
    x, y = digits.train.images, digits.train.labels
    key = feature_net.feature_net_key(x, y, "arch", 0)
    flipped = y.copy()
    flipped[0] = (flipped[0] + 1) % 10
    nudged = x.copy()
    nudged[0, 0, 0, 0] += 1e-3
    others = {feature_net.feature_net_key(x, flipped, "arch", 0), feature_net.feature_net_key(nudged, y, "arch", 0),
              feature_net.feature_net_key(x, y, "arch2", 0), feature_net.feature_net_key(x, y, "arch", 1)}
    assert key not in others and len(others) == 4
    assert feature_net.feature_net_key(x.copy(), y.copy(), "arch", 0) == key


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(feature_net.CACHE_ENV, str(tmp_path))
    assert feature_net.cache_root() == str(tmp_path)
    monkeypatch.delenv(feature_net.CACHE_ENV)
    assert feature_net.cache_root().endswith(os.path.join(".cache", "jsynth"))


def test_features_do_not_depend_on_the_chunk_they_are_computed_in(digits, cache):
    net = feature_net.load_or_train(digits.train, digits.heldout, cache_dir=cache, progress=False)
    images = digits.heldout.images
    whole = net.features(images)  # 359 rows: a padded chunk
    np.testing.assert_allclose(net.features(images[100:137]), whole[100:137], rtol=1e-5, atol=1e-6)
    assert whole.shape == (len(images), net.model.feature_dim) and whole.dtype == np.float32


def test_feature_net_needs_labels(digits):
    unlabelled = type(digits.train)(digits.train.images, None, 0, "unlabelled")
    with pytest.raises(ValueError, match="labelled"):
        feature_net.load_or_train(unlabelled, cache_dir="/nonexistent", progress=False)


def test_real_subset_is_fixed_and_holds_every_class(digits):
    labels = digits.train.labels
    subset = utility.real_subset(labels, 14, seed=0)  # 1 % of 1,438
    assert subset.size == 14 and len(np.unique(subset)) == 14
    assert set(labels[subset]) == set(range(10))
    np.testing.assert_array_equal(subset, utility.real_subset(labels, 14, seed=0))
    assert not np.array_equal(subset, utility.real_subset(labels, 14, seed=1))
    assert utility.real_subset(labels, 10**6, seed=0).size == labels.size


def test_cached_accuracy_is_computed_once_and_written_atomically(tmp_path):
    calls = []
    compute = lambda: calls.append(1) or 0.875  # noqa: E731
    assert utility.cached_accuracy(("a", 1), compute, str(tmp_path)) == 0.875
    assert utility.cached_accuracy(("a", 1), lambda: 0.0, str(tmp_path)) == 0.875  # read back
    assert utility.cached_accuracy(("a", 2), lambda: 0.5, str(tmp_path)) == 0.5  # another key
    assert utility.cached_accuracy(("a", 1), lambda: 0.25, "") == 0.25  # "" keeps nothing
    files = os.listdir(tmp_path / "utility")
    assert len(calls) == 1 and len(files) == 2 and all(f.endswith(".json") and "tmp" not in f for f in files)
