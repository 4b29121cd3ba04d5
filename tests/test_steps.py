"""The step builders of jsynth.train.steps: learning, 1 device == 8 devices, the per-device function
under shard_map/pmap, no retracing, batch-size checks and bfloat16 compute.

Models are the tiny presets on 8x8 images; compiled steps are shared through module fixtures.
"""
import re
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from helpers import (DIGITS_CLASSES, DIGITS_SHAPE, TraceCounter, assert_trees_bitwise_equal,
                     assert_trees_close, compilation_cache, fixed_batch, host, place,  # noqa: F401
                     tiny_family, trees_differ)
from jsynth import configs, parallel
from jsynth.builders import build_family, build_gan, build_optimizer, build_vae
from jsynth.train import loop
from jsynth.families import GANFamily, VAEFamily
from jsynth.train.steps import jit_over_mesh

KEY = jax.random.key(42)


def init_state(family):
    """The library's init, jitted as ``loop.run`` does on 8 devices (so compiles are shared)."""
    mesh = parallel.data_mesh()
    return host(jax.jit(family.init, out_shardings=parallel.replicated(mesh))(jax.random.key(0)))


class Model:
    """A tiny model's family, its initial state (host copy) and steps jitted over 1 and 8 devices."""

    def __init__(self, name, conditional=False):
        self.config, self.family = tiny_family(name, conditional)
        self.num_classes = DIGITS_CLASSES if conditional else 0
        self.state = init_state(self.family)
        self.meshes = {n: parallel.data_mesh(n) for n in (1, 8)}
        self.counted = TraceCounter(self.family.update)
        self.steps = {1: jit_over_mesh(self.family.update, self.meshes[1]),
                      8: jit_over_mesh(self.counted, self.meshes[8])}

    def batch(self, i):
        return fixed_batch(self.family.data_range, 16, self.num_classes, seed=i)

    def train(self, devices, num_steps, same_batch=False):
        """(final state, metrics per step) after ``num_steps`` from the initial state."""
        mesh, step = self.meshes[devices], self.steps[devices]
        state, history = place(self.state, mesh), []
        for i in range(num_steps):
            batch = parallel.shard_batch(mesh, self.batch(0 if same_batch else i))
            state, metrics = step(state, batch, jax.random.fold_in(KEY, i))
            history.append({k: float(v) for k, v in metrics.items()})
        return state, history


@pytest.fixture(scope="module")
def vae():
    return Model("mlpvae")


@pytest.fixture(scope="module")
def dcgan():
    return Model("dcgan", conditional=True)


# ---- learning -------------------------------------------------------------------------------

def test_vae_loss_falls_on_a_fixed_batch(vae):
    state, history = vae.train(8, 30, same_batch=True)
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < losses[0] - 1.0, losses
    assert int(state.step) == 30
    assert set(history[0]) == {"loss", "recon", "kl"}


@pytest.mark.slow
def test_gan_discriminator_loss_falls_against_a_frozen_generator():
    config = configs.resolve(configs.tiny("mlpgan"))
    generator, discriminator = build_gan(config, DIGITS_SHAPE, 0)
    frozen, d_tx = optax.set_to_zero(), build_optimizer(config)
    family = build_family(config, DIGITS_SHAPE, 0)
    step = jax.jit(GANFamily(generator, discriminator, frozen, d_tx, ema_decay=config.ema_decay).update)
    state = jax.jit(family.init)(jax.random.key(0))  # g_tx's state (adam) is unused by set_to_zero
    state = state.replace(g_opt_state=frozen.init(state.g_params))
    g_before = host(state.g_params)
    batch = fixed_batch("tanh", 16)
    d_losses = []
    for i in range(25):
        state, metrics = step(state, batch, KEY)  # the same fakes every step
        assert all(np.isfinite(float(v)) for v in metrics.values())
        d_losses.append(float(metrics["d_loss"]))
    assert int(state.step) == 25
    assert_trees_bitwise_equal(state.g_params, g_before)
    # Same inputs every step and a small learning rate: D's loss falls at every step.
    assert np.all(np.diff(d_losses) < 0), d_losses
    assert d_losses[-1] < d_losses[0] - 0.05, d_losses


def test_gan_step_is_finite_and_counts_steps(dcgan):
    state, history = dcgan.train(8, 3)
    assert int(state.step) == 3
    assert set(history[0]) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for h in history for v in h.values())
    assert all(0.0 < h["d_real"] < 1.0 and 0.0 < h["d_fake"] < 1.0 for h in history)
    # Everything the step owns moved: both nets, BatchNorm statistics and the EMA generator.
    for name in ("g_params", "d_params", "g_batch_stats", "ema_params"):
        assert trees_differ(getattr(state, name), getattr(dcgan.state, name)), name


# ---- 1 device == 8 devices --------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ("dcgan", "vae"))
def test_eight_devices_give_the_parameters_of_one(name, request):
    model = request.getfixturevalue(name)
    one, history_one = model.train(1, 4)
    eight, history_eight = model.train(8, 4)
    assert int(one.step) == int(eight.step) == 4
    assert trees_differ(one, place(model.state, model.meshes[1]))  # it trained
    assert_trees_close(one, eight, rtol=1e-4, atol=1e-5)
    for a, b in zip(history_one, history_eight):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_the_generator_runs_data_parallel():
    """No device computes the whole batch: the noise is split over the mesh like the images.

    In an unconditional GAN nothing but the noise feeds the generator, so without the split XLA
    ran all of it on every device (correct numbers, no speed-up from more devices; the test
    above cannot see that).
    """
    _, family = tiny_family("dcgan")
    rows = 24  # 3 per device on 8; a size no layer of the tiny model has
    mesh = parallel.data_mesh(8)
    state = jax.eval_shape(family.init, jax.random.key(0))
    batch = parallel.shard_batch(mesh, fixed_batch(family.data_range, rows))
    hlo = jit_over_mesh(family.update, mesh).lower(state, batch, KEY).compile().as_text()
    per_device = re.findall(rf"= f32\[{rows // 8},[^\]]*\][^ ]* (?:fusion|convolution|dot)\(", hlo)
    whole_batch = re.findall(rf"= f32\[{rows},[^\]]*\][^ ]* (?:fusion|convolution|dot)\(", hlo)
    assert per_device, "expected per-device activations in the compiled step"
    assert not whole_batch, whole_batch[:3]


def test_no_retrace_across_steps(vae):
    vae.train(8, 3)
    vae.train(8, 2, same_batch=True)
    assert vae.counted.count == 1
    assert vae.steps[8]._cache_size() == 1


def test_batch_size_must_divide_the_devices():
    with pytest.raises(ValueError, match=r"batch size 12 does not divide over 8 devices.*multiple of 8"):
        parallel.check_batch_size(12, parallel.data_mesh(8))
    parallel.check_batch_size(12, parallel.data_mesh(4))  # 3 rows per device is fine
    with pytest.raises(ValueError, match="does not divide over 8 devices"):
        loop.prepare(configs.tiny("mlpvae", batch_size=20))
    with pytest.raises(ValueError, match="only 8 are visible"):
        parallel.data_mesh(9)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params_and_finite_losses(dcgan):
    config, family = tiny_family("dcgan", conditional=True, compute_dtype="bfloat16")
    # The state has the same shapes and (float32) dtypes as in float32 compute, so the float32
    # model's initial state serves; only the step computes in bfloat16.
    shapes = jax.eval_shape(family.init, jax.random.key(0))
    assert jax.tree.map(lambda s: (s.shape, s.dtype), shapes) == jax.tree.map(
        lambda x: (x.shape, x.dtype), dcgan.state)
    mesh = dcgan.meshes[8]
    step = jit_over_mesh(family.update, mesh)
    state = place(dcgan.state, mesh)
    for i in range(2):
        state, metrics = step(state, parallel.shard_batch(mesh, dcgan.batch(i)), jax.random.fold_in(KEY, i))
        assert all(np.isfinite(float(v)) for v in metrics.values())
    floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)
    assert trees_differ(state.g_params, dcgan.state.g_params)


# ---- the per-device function under shard_map and pmap -------------------------------------------
#
# With an axis name each device draws the noise of the whole global batch and keeps its own rows,
# so the per-device step must reproduce the jitted global-batch step: gradient, metric and
# BatchNorm averaging over devices included (the conditional DCGAN has BatchNorm, and its labels
# differ across devices). The optimiser is SGD: Adam is invariant to the gradient's scale and
# would hide a gradient that is N times too large (the classic pmap-habit bug under shard_map).

AXIS = "batch"
DRIVERS = ("shard_map", "shard_map_unchecked", "pmap")


def sgd_gan():
    base = configs.tiny("dcgan", conditional=True)
    config = configs.resolve(configs.replace(base, optimizer="sgd", learning_rate=0.05))
    # The weights of the Adam preset's init (compiled already); the optimiser states are SGD's.
    state = init_state(build_family(configs.resolve(base), DIGITS_SHAPE, DIGITS_CLASSES))
    g_tx, d_tx = build_optimizer(config), build_optimizer(config)

    def update(axis_name):
        generator, discriminator = build_gan(config, DIGITS_SHAPE, DIGITS_CLASSES, axis_name=axis_name)
        return GANFamily(generator, discriminator, g_tx, d_tx, ema_decay=config.ema_decay,
                         axis_name=axis_name).update

    state = state.replace(g_opt_state=host(jax.jit(g_tx.init)(state.g_params)),
                          d_opt_state=host(jax.jit(d_tx.init)(state.d_params)))
    return update, state, "tanh", DIGITS_CLASSES


def sgd_vae():
    base = configs.tiny("mlpvae")
    config = configs.resolve(configs.replace(base, optimizer="sgd", learning_rate=0.01))
    vae, tx = build_vae(config, DIGITS_SHAPE, 0), build_optimizer(config)

    def update(axis_name):
        return VAEFamily(vae, tx, beta=config.beta, likelihood=config.likelihood, axis_name=axis_name).update

    state = init_state(build_family(configs.resolve(base), DIGITS_SHAPE, 0))  # see sgd_gan
    return update, state.replace(opt_state=host(jax.jit(tx.init)(state.params))), "unit", 0


class PerDevice:
    """A model and its global-batch reference run (3 steps from the same state)."""

    NUM_STEPS = 3

    def __init__(self, make):
        self.update, self.state, self.model_range, self.num_classes = make()
        self.batches = [fixed_batch(self.model_range, 16, self.num_classes, seed=i)
                        for i in range(self.NUM_STEPS)]
        global_step = jax.jit(self.update(None))
        keys = lambda offset: [jax.random.fold_in(KEY, offset + i) for i in range(self.NUM_STEPS)]
        self.reference = self.run(global_step, keys(0))

    def run(self, step, keys):
        state, history = jax.tree.map(jnp.asarray, self.state), []
        for batch, key in zip(self.batches, keys):
            state, metrics = step(state, batch, key)
            history.append(metrics)
        return state, history

    def run_per_device(self, driver):
        keys = [jax.random.fold_in(KEY, i) for i in range(self.NUM_STEPS)]
        update = self.update(AXIS)
        if driver == "pmap":
            step = jax.pmap(update, axis_name=AXIS, in_axes=(None, 0, None))
            split = lambda b: jax.tree.map(lambda x: x.reshape((8, -1) + x.shape[1:]), b)
            state, history = self.state, []  # host arrays, as every later step passes
            for batch, key in zip(self.batches, keys):
                out_state, metrics = host(step(state, split(batch), key))
                # Every device holds the same (replicated) result; keep device 0's.
                assert_trees_bitwise_equal(jax.tree.map(lambda x: x[0], out_state),
                                           jax.tree.map(lambda x: x[-1], out_state))
                state = jax.tree.map(lambda x: x[0], out_state)
                history.append(jax.tree.map(lambda x: x[0], metrics))
            return state, history
        mesh = Mesh(np.array(jax.devices()[:8]), (AXIS,))
        step = jax.jit(jax.shard_map(update, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=P(),
                                     check_vma=(driver == "shard_map")))
        # Inputs placed as the outputs come back (replicated state, sharded batch): one compile.
        state = jax.device_put(self.state, NamedSharding(mesh, P()))
        batches = jax.device_put(self.batches, NamedSharding(mesh, P(AXIS)))
        history = []
        for batch, key in zip(batches, keys):
            state, metrics = step(state, batch, key)
            history.append(metrics)
        assert step._cache_size() == 1
        return state, history


# The GAN (BatchNorm over the axis included) is in the full run, the VAE in the quick set too.
@pytest.fixture(scope="module", params=(pytest.param("gan", marks=pytest.mark.slow), "vae"))
def per_device(request):
    return PerDevice(sgd_gan if request.param == "gan" else sgd_vae)


# shard_map (checked) is in the quick set; the other two drivers (a compile each) in the full run.
@pytest.mark.parametrize("driver", [d if d == "shard_map" else pytest.param(d, marks=pytest.mark.slow)
                                    for d in DRIVERS])
def test_per_device_step_matches_the_global_step(per_device, driver):
    state, history = per_device.run_per_device(driver)
    reference, reference_history = per_device.reference
    assert trees_differ(reference, per_device.state)  # it trained
    assert int(state.step) == per_device.NUM_STEPS
    assert_trees_close(state, reference, rtol=2e-4, atol=2e-5)
    for a, b in zip(history, reference_history):
        assert_trees_close(a, b, rtol=1e-4, atol=1e-5)
