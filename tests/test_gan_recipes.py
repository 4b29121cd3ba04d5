"""The GAN training recipes of issue 11: each computes what it claims, reaches the step from the
config, keeps 1 device == 8 devices and bitwise resume, and leaves the default step as it was.

Losses and penalties are checked in closed form, DiffAugment on pixels, spectral normalisation
against numpy's SVD, the projection discriminator against its formula. The steps use the tiny MLP
GAN (one compile costs seconds, a DCGAN's ten); the default DCGAN step is compared with a stored
copy of the update as it was (tests/reference_gan_update.py) through its jaxpr, which fixes
everything XLA computes.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import (DIGITS_CLASSES, DIGITS_SHAPE, assert_trees_bitwise_equal, assert_trees_close,  # noqa: F401
                     compilation_cache, fixed_batch, host, place, tiny_family, trees_differ)
from reference_gan_update import update_before_recipes
from jsynth import augment, builders, configs, data as jdata, losses, parallel
from jsynth.configs import ConfigError
from jsynth.models import DCGANDiscriminator, MLPDiscriminator
from jsynth.train import loop
from jsynth.train.steps import jit_over_mesh, row_keys

KEY = jax.random.key(7)
RNG = np.random.default_rng(0)
# Jitted once each: eager JAX compiles every primitive apart (seconds on 2 slow cores).
gradient_penalty = jax.jit(losses.gradient_penalty, static_argnums=0)
r1_penalty = jax.jit(losses.r1_penalty, static_argnums=0)


# ---- losses and penalties ---------------------------------------------------------------------

def test_hinge_losses_on_known_logits():
    real, fake = jnp.array([2.0, 0.5, -1.0]), jnp.array([-2.0, 0.0, 1.5])
    # relu(1 - real) = (0, 0.5, 2), relu(1 + fake) = (0, 1, 2.5)
    assert float(losses.discriminator_loss_hinge(real, fake)) == pytest.approx(2.5 / 3 + 3.5 / 3, rel=1e-6)
    assert float(losses.generator_loss_critic(fake)) == pytest.approx(0.5 / 3, rel=1e-6)


def test_wasserstein_critic_loss_is_mean_fake_minus_mean_real():
    real, fake = jnp.array([1.0, 3.0]), jnp.array([-1.0, 0.0, 4.0])
    assert float(losses.critic_loss_wasserstein(real, fake)) == pytest.approx(1.0 - 2.0, rel=1e-6)


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    w = jnp.asarray(RNG.normal(size=(3, 3, 2)), jnp.float32)  # grad_x <w, x> = w everywhere
    real, fake = (jnp.asarray(RNG.normal(size=(4, 3, 3, 2)), jnp.float32) for _ in range(2))
    eps = jnp.asarray(RNG.uniform(size=4), jnp.float32)
    penalty = gradient_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)), real, fake, eps)
    assert float(penalty) == pytest.approx((np.linalg.norm(w) - 1.0) ** 2, rel=1e-5)


def test_gradient_penalty_interpolates_per_example_and_takes_the_norm_per_example():
    # critic(x)_i = |x_i|^2 / 2: its input gradient is x_hat_i itself.
    real, fake = RNG.normal(size=(5, 2, 3, 1)), RNG.normal(size=(5, 2, 3, 1))
    eps = RNG.uniform(size=5)
    mixed = eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake
    expected = np.mean((np.sqrt(np.sum(mixed ** 2, axis=(1, 2, 3))) - 1.0) ** 2)
    critic = lambda x: 0.5 * jnp.sum(jnp.square(x), axis=(1, 2, 3))
    args = (jnp.asarray(a, jnp.float32) for a in (real, fake, eps))
    assert float(gradient_penalty(critic, *args)) == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_float32_under_bfloat16():
    w = jnp.asarray(RNG.normal(size=(4, 4, 1)), jnp.bfloat16)
    real, fake = (jnp.asarray(RNG.normal(size=(6, 4, 4, 1)), jnp.bfloat16) for _ in range(2))
    eps = jnp.asarray(RNG.uniform(size=6), jnp.float32)
    # A critic that computes in bfloat16, as a bfloat16 discriminator does.
    critic = lambda x: jnp.sum(x.astype(jnp.bfloat16) * w, axis=(1, 2, 3)).astype(jnp.float32)
    low = gradient_penalty(critic, real, fake, eps)
    assert low.dtype == jnp.float32
    exact = (np.linalg.norm(np.asarray(w, np.float64)) - 1.0) ** 2
    # The input gradient is w in bfloat16, exactly; the norm of it is then float32-exact.
    assert float(low) == pytest.approx(exact, rel=1e-5)


def test_r1_penalty_of_a_quadratic_critic():
    a, gamma = 1.5, 4.0
    real = RNG.normal(size=(3, 2, 2, 3))
    expected = gamma / 2 * np.mean(np.sum((a * real) ** 2, axis=(1, 2, 3)))  # grad of a|x|^2/2 is a x
    critic = lambda x: 0.5 * a * jnp.sum(jnp.square(x), axis=(1, 2, 3))
    assert float(r1_penalty(critic, jnp.asarray(real, jnp.float32), gamma)) == pytest.approx(expected, rel=1e-5)


# ---- DiffAugment --------------------------------------------------------------------------------

def _shift(image, dy, dx):
    """numpy reference: out[i, j] = image[i + dy, j + dx], 0 outside."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[i, j] = image[i + dy, j + dx]
    return out


def test_translation_moves_pixels_by_at_most_an_eighth_and_pads_with_zeros():
    image = np.arange(1, 16 * 16 * 2 + 1, dtype=np.float32).reshape(16, 16, 2)  # all distinct, non-zero
    translate = jax.jit(augment.translation)
    seen = set()
    for i in range(12):
        key = jax.random.fold_in(KEY, i)
        out = np.asarray(translate(image, key))
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                  if np.array_equal(out, _shift(image, dy, dx))]
        assert len(shifts) == 1, f"not a shift by at most 16/8 = 2 pixels (key {i})"
        seen.add(shifts[0])
        np.testing.assert_array_equal(out, np.asarray(translate(image, key)))  # same key, same result
    assert len(seen) > 3 and any(s != (0, 0) for s in seen)


@pytest.mark.slow
def test_translation_is_differentiable():
    image = jnp.asarray(RNG.normal(size=(8, 8, 1)), jnp.float32)
    gradient = jax.jit(jax.grad(lambda x, key: jnp.sum(augment.translation(x, key))))
    translate = jax.jit(augment.translation)
    for i in range(4):
        key = jax.random.fold_in(KEY, i)
        grad = gradient(image, key)
        kept = np.asarray(translate(jnp.ones_like(image), key))  # 1 where a pixel landed
        # Every pixel that lands in the output gets gradient 1, the ones pushed out 0.
        assert float(jnp.sum(grad)) == pytest.approx(float(kept.sum()))
        assert set(np.unique(np.asarray(grad))) <= {0.0, 1.0}


@pytest.mark.slow
def test_cutout_zeroes_a_square_of_half_the_size():
    ones = jnp.ones((8, 8, 3))
    cut = jax.jit(augment.cutout)
    areas = []
    for i in range(16):
        out = np.asarray(cut(ones, jax.random.fold_in(KEY, i)))
        hole = out[:, :, 0] == 0
        assert np.array_equal(out == 0, np.repeat(hole[:, :, None], 3, axis=2))  # all channels
        rows, cols = np.where(hole)
        assert hole.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one rectangle
        assert np.ptp(rows) + 1 <= 4 and np.ptp(cols) + 1 <= 4
        areas.append(int(hole.sum()))
    assert 16 in areas and min(areas) >= 4  # whole 4x4 squares, and clipped ones at the edges


@pytest.mark.slow
def test_color_is_a_bounded_brightness_and_contrast_change_and_keeps_grey_grey():
    grey = jnp.asarray(RNG.uniform(-1, 1, size=(8, 8, 1)), jnp.float32)
    color = jax.jit(augment.color)
    for i in range(8):
        out = np.asarray(color(grey, jax.random.fold_in(KEY, i)))
        x = np.asarray(grey)
        slope = np.std(out) / np.std(x)
        offset = np.mean(out) - np.mean(x)
        np.testing.assert_allclose(out, slope * (x - x.mean()) + x.mean() + offset, atol=1e-5)  # affine
        assert 0.5 <= slope <= 1.5 and -0.5 <= offset <= 0.5
    rgb_grey = jnp.repeat(grey, 3, axis=-1)  # saturation cannot colour a grey RGB image
    out = np.asarray(color(rgb_grey, KEY))
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)


@pytest.mark.slow
def test_diff_augment_is_per_example_keyed_and_lets_gradients_through():
    images = jnp.asarray(RNG.uniform(-1, 1, size=(8, 8, 8, 1)), jnp.float32)
    keys = row_keys(KEY, 8, None)
    order = np.array([3, 0, 7, 1, 6, 2, 5, 4])
    run = lambda x, k: augment.diff_augment(x, k, (augment.translation, augment.cutout, augment.color))

    @jax.jit  # one compile for every check
    def checks(images, keys):
        return (run(images, keys), run(images, keys), run(images[order], keys[order]),
                run(jnp.repeat(images[:1], 8, axis=0), keys), jax.grad(lambda x: jnp.sum(run(x, keys) ** 2))(images))

    out, again, permuted, same_image, grad = checks(images, keys)
    np.testing.assert_array_equal(out, again)
    # Row i's augmentation depends on its own image and key only (what makes devices agree).
    np.testing.assert_array_equal(permuted, np.asarray(out)[order])
    # The same image with each row's key: eight different augmentations.
    assert len({np.asarray(row).tobytes() for row in same_image}) == 8
    assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0
    assert augment.diff_augment(images, keys, ()) is images


# ---- discriminators -----------------------------------------------------------------------------

@pytest.mark.slow
def test_spectral_norm_makes_the_top_singular_value_one():
    d = MLPDiscriminator(16, spectral_norm=True)
    x = jnp.asarray(RNG.normal(size=(4, 8, 8, 1)), jnp.float32)

    @jax.jit
    def train_then_compare():
        variables = d.init(KEY, x)
        power_iteration = lambda _, v: {**v, **d.apply(v, x, train=True, mutable=["batch_stats"])[1]}
        variables = jax.lax.fori_loop(0, 60, power_iteration, variables)  # one iteration per call
        params, stats = variables["params"], variables["batch_stats"]
        sigmas = [stats[f"SpectralNorm_{i}"][f"{name}/kernel/sigma"] for i, name in enumerate(("Dense_0", "Dense_1"))]
        normalised = {name: {**params[name], "kernel": params[name]["kernel"] / sigma}
                      for name, sigma in zip(("Dense_0", "Dense_1"), sigmas)}
        return params, sigmas, d.apply(variables, x), MLPDiscriminator(16).apply({"params": normalised}, x)

    params, sigmas, logits, plain_logits = train_then_compare()
    for name, sigma in zip(("Dense_0", "Dense_1"), sigmas):
        kernel = np.asarray(params[name]["kernel"])
        assert float(sigma) == pytest.approx(np.linalg.svd(kernel, compute_uv=False)[0], rel=1e-4)
        assert np.linalg.svd(kernel / float(sigma), compute_uv=False)[0] == pytest.approx(1.0, rel=1e-4)
    # ... and the network computes with the normalised weights.
    np.testing.assert_allclose(logits, plain_logits, rtol=1e-4, atol=1e-5)


def test_spectral_norm_keeps_the_parameter_tree():
    x, labels = jnp.zeros((1,) + DIGITS_SHAPE), jnp.zeros((1,), jnp.int32)
    shapes = lambda d: jax.eval_shape(lambda: d.init(KEY, x, labels))
    for plain in (MLPDiscriminator(16, DIGITS_CLASSES, conditioning="projection"),
                  DCGANDiscriminator(4, DIGITS_CLASSES)):
        normed = shapes(plain.clone(spectral_norm=True))
        assert normed["params"] == shapes(plain)["params"]
        assert set(normed) == {"params", "batch_stats"}


@pytest.mark.slow
def test_projection_term_is_the_inner_product_of_embedding_and_features():
    d = MLPDiscriminator(16, DIGITS_CLASSES, conditioning="projection")
    x = jnp.asarray(RNG.normal(size=(5,) + DIGITS_SHAPE), jnp.float32)
    labels = jnp.array([0, 3, 3, 9, 1])

    @jax.jit
    def logits_and_formula():
        logits, variables = d.init_with_output(KEY, x, labels)
        p = variables["params"]
        h = jax.nn.leaky_relu(x.reshape(5, -1) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0.2)
        psi = (h @ p["Dense_1"]["kernel"])[:, 0] + p["Dense_1"]["bias"][0]
        return logits, psi + jnp.sum(p["Embed_0"]["embedding"][labels] * h, axis=-1), p["Dense_0"]["kernel"].shape

    logits, formula, first_layer = logits_and_formula()
    np.testing.assert_allclose(logits, formula, rtol=1e-5, atol=1e-6)
    assert first_layer[0] == 64  # the label is not concatenated


def test_dcgan_concat_conditioning_takes_one_hot_planes():
    x, labels = jnp.zeros((2,) + DIGITS_SHAPE), jnp.array([1, 2])
    d = DCGANDiscriminator(4, DIGITS_CLASSES, conditioning="concat")
    params = jax.eval_shape(lambda: d.init(KEY, x, labels))["params"]
    assert params["Conv_0"]["kernel"].shape[2] == 1 + DIGITS_CLASSES and "Embed_0" not in params


# ---- config and builders ------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, allowed", [
    ("gan_loss", "lsgan", "one of"), ("gp_weight", -1.0, "non-negative"), ("r1_gamma", -0.1, "non-negative"),
    ("r1_every", 0, "positive integer"), ("n_critic", 0, "positive integer"),
    ("d_learning_rate", 0.0, "positive"), ("d_conditioning", "film", "one of"),
    ("diffaugment", "translation,flip", "comma list"), ("diffaugment", "color,color", "distinct")])
def test_config_rejects_bad_recipe_values(field, value, allowed):
    with pytest.raises(ConfigError, match=rf"{field}=.*{allowed}"):
        configs.tiny("dcgan", **{field: value})


def test_gan_options_are_refused_for_a_vae():
    with pytest.raises(ConfigError, match=r"spectral_norm=True.*a GAN option"):
        configs.tiny("mlpvae", spectral_norm=True)


def test_resolve_gives_each_gan_its_own_conditioning():
    assert configs.resolve(configs.tiny("mlpgan")).d_conditioning == "concat"
    assert configs.resolve(configs.tiny("dcgan")).d_conditioning == "projection"
    assert configs.resolve(configs.tiny("mlpvae")).d_conditioning is None


def test_builder_tables_cover_the_config_names():
    assert tuple(builders._GAN_LOSSES) == configs.GAN_LOSSES
    assert tuple(builders._DIFFAUGMENTS) == configs.DIFFAUGMENTS
    from jsynth.models.conditioning import D_CONDITIONINGS
    assert D_CONDITIONINGS == configs.D_CONDITIONINGS


def test_set_reaches_every_recipe_field():
    config = configs.resolve(configs.with_overrides(configs.tiny("mlpgan", conditional=True), [
        "gan_loss=wgan-gp", "gp_weight=5", "r1_gamma=0.5", "r1_every=4", "n_critic=3", "d_learning_rate=0.001",
        "spectral_norm=true", "d_conditioning=projection", "diffaugment=translation, color"]))
    family = builders.build_family(config, DIGITS_SHAPE, DIGITS_CLASSES)
    assert (family.d_loss, family.g_loss) == (losses.critic_loss_wasserstein, losses.generator_loss_critic)
    assert (family.gp_weight, family.r1_gamma, family.r1_every, family.n_critic) == (5.0, 0.5, 4, 3)
    assert family.augment == (augment.translation, augment.color)
    assert family.discriminator.spectral_norm and family.discriminator.conditioning == "projection"
    # Two time-scales: Adam's first step moves each parameter by about its learning rate.
    ones = {"w": jnp.ones(3)}
    for tx, lr in ((family.d_optimizer, 1e-3), (family.g_optimizer, config.learning_rate)):
        step, _ = tx.update(ones, tx.init(ones), ones)
        np.testing.assert_allclose(step["w"], -lr, rtol=1e-4)
    hinge = builders.build_family(configs.replace(config, gan_loss="hinge"), DIGITS_SHAPE, DIGITS_CLASSES)
    assert hinge.d_loss is losses.discriminator_loss_hinge and hinge.gp_weight == 0.0


def test_spectral_norm_vectors_are_state_but_not_sampling_weights():
    _, family = tiny_family("dcgan", conditional=True, spectral_norm=True)
    state = jax.eval_shape(family.init, KEY)
    assert jax.tree.leaves(state.d_batch_stats)
    assert family.sampling_shapes().d_batch_stats is None
    _, plain = tiny_family("dcgan", conditional=True)
    assert jax.eval_shape(plain.init, KEY).d_batch_stats == {}


# ---- the default step is the step as it was -----------------------------------------------------

@pytest.mark.parametrize("model, conditional", [("dcgan", True),
                                                pytest.param("mlpgan", False, marks=pytest.mark.slow)])
def test_default_step_traces_to_the_update_before_the_recipes(model, conditional):
    _, family = tiny_family(model, conditional)
    state = jax.eval_shape(family.init, KEY)
    batch = fixed_batch("tanh", 16, DIGITS_CLASSES if conditional else 0)
    new = jax.make_jaxpr(family.update)(state, batch, KEY)
    old = jax.make_jaxpr(lambda s, b, k: update_before_recipes(family, s, b, k))(state, batch, KEY)
    assert str(new) == str(old)


@pytest.mark.slow
def test_default_step_is_bitwise_the_update_before_the_recipes():
    _, family = tiny_family("mlpgan", conditional=True)
    old_step = jax.jit(lambda s, b, k: update_before_recipes(family, s, b, k))
    start = host(jax.jit(family.init)(KEY))
    results = []
    for step in (jax.jit(family.update), old_step):
        state = jax.tree.map(jnp.asarray, start)
        for i in range(2):
            state, metrics = step(state, fixed_batch("tanh", 16, DIGITS_CLASSES, seed=i), jax.random.fold_in(KEY, i))
        results.append((state, metrics))
    assert_trees_bitwise_equal(results[0], results[1])


# ---- every option at once: devices, schedules, resume -------------------------------------------

EVERYTHING = dict(gan_loss="wgan-gp", r1_gamma=1.0, r1_every=2, n_critic=2, d_learning_rate=1e-3,
                  spectral_norm=True, d_conditioning="projection", diffaugment="translation,cutout,color")


class Everything:
    """The tiny conditional MLP GAN with every option on, and 4 steps of it on 1 device."""

    NUM_STEPS = 4

    def __init__(self):
        self.config, self.family = tiny_family("mlpgan", conditional=True, **EVERYTHING)
        self.start = host(jax.jit(self.family.init)(KEY))
        self.batches = [fixed_batch("tanh", 16, DIGITS_CLASSES, seed=i) for i in range(self.NUM_STEPS)]
        self.keys = [jax.random.fold_in(KEY, i) for i in range(self.NUM_STEPS)]
        self.states, self.history = self.run(1)

    def run(self, devices):
        """(state after each step, metrics of each step) of the jitted global-batch step."""
        mesh = parallel.data_mesh(devices)
        step, state, states, history = jit_over_mesh(self.family.update, mesh), place(self.start, mesh), [], []
        for batch, key in zip(self.batches, self.keys):
            state, metrics = step(state, parallel.shard_batch(mesh, batch), key)
            states.append(host(state))
            history.append(host(metrics))
        return states, history


@pytest.fixture(scope="module")
def everything():
    return Everything()


@pytest.mark.slow
def test_every_option_at_once_gives_equal_steps_on_1_and_8_devices(everything):
    states, history = everything.run(8)
    assert_trees_close(states, everything.states, rtol=1e-4, atol=1e-5)
    assert_trees_close(history, everything.history, rtol=1e-4, atol=1e-5)
    assert all(np.isfinite(v) for h in history for v in h.values())
    assert {"gp", "r1"} <= set(history[0]) and history[0]["gp"] > 0
    # n_critic=2: D moves every step, G (and its EMA) on steps 1 and 3 only.
    before = everything.start
    for i, state in enumerate(states):
        assert trees_differ(state.d_params, before.d_params)
        assert trees_differ(state.d_batch_stats, before.d_batch_stats)  # power iteration
        assert trees_differ(state.g_params, before.g_params) == (i % 2 == 1), i
        assert trees_differ(state.ema_params, before.ema_params) == (i % 2 == 1), i
        before = state
    # Lazy R1 every 2 steps: computed on steps 0 and 2.
    assert [h["r1"] > 0 for h in history] == [True, False, True, False]


@pytest.mark.slow
def test_every_option_at_once_per_device_under_shard_map(everything):
    """The per-device update (axis name, lax.cond branches cast alike) equals the global step."""
    family = builders.build_family(everything.config, DIGITS_SHAPE, DIGITS_CLASSES, axis_name="batch")
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]), ("batch",))
    P = jax.sharding.PartitionSpec
    step = jax.jit(jax.shard_map(family.update, mesh=mesh, in_specs=(P(), P("batch"), P()), out_specs=P()))
    state, history = jax.tree.map(jnp.asarray, everything.start), []
    for batch, key in zip(everything.batches, everything.keys):
        state, metrics = step(state, batch, key)
        history.append(host(metrics))
    assert_trees_close(state, everything.states[-1], rtol=2e-4, atol=2e-5)
    assert_trees_close(history, everything.history, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_spectral_norm_run_resumes_bitwise_and_loads_for_sampling(tmp_path):
    import jsynth
    dataset = jdata.load("digits")
    # The options whose state or schedule a resume could get wrong: spectral norm's vectors, and
    # n_critic and lazy R1, which act on some steps only (the run stops between G's turns).
    config = lambda steps: configs.tiny("mlpgan", conditional=True, steps=steps, checkpoint_every=3,
                                        spectral_norm=True, n_critic=2, r1_gamma=1.0, r1_every=2,
                                        num_devices=1)
    straight = host(loop.run(config(6), str(tmp_path / "straight"), dataset=dataset))
    loop.run(config(3), str(tmp_path / "resumed"), dataset=dataset)
    resumed = host(loop.run(config(6), str(tmp_path / "resumed"), dataset=dataset))
    assert jax.tree.leaves(straight.d_batch_stats)
    assert_trees_bitwise_equal(resumed, straight)
    trained = jsynth.load_trained(str(tmp_path / "resumed"))  # reads no discriminator state
    assert trained.step == 6
    assert_trees_bitwise_equal(trained.variables["params"], straight.ema_params)
