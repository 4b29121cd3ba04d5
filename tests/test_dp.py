"""Differential privacy (issue 13): accounting, Poisson batches, the DP-SGD step, budget and resume."""
import dataclasses

import dp_accounting
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from dp_accounting import pld, rdp
from scipy import stats

from jsynth import configs, parallel
from jsynth.builders import build_family
from jsynth.configs import ConfigError
from jsynth.families import GANFamily
from jsynth.models import MLPGenerator
from jsynth.privacy import accounting, poisson
from jsynth.privacy.mechanism import PrivacyError, PrivateFamily
from jsynth.privacy.plan import PrivacyBudgetError, resolve_dp
from jsynth.train.steps import make_step

SHAPE = (8, 8, 1)


def _vae(**overrides):
    config = configs.resolve(configs.tiny("mlpvae", conditional=True, **overrides))
    return build_family(config, SHAPE, 3)


def _batch(rows, real, seed=0, tanh=False):
    rng = np.random.default_rng(seed)
    image = rng.random((rows,) + SHAPE, np.float32)
    return {"image": image * 2 - 1 if tanh else image, "label": rng.integers(0, 3, rows).astype(np.int32),
            "mask": (np.arange(rows) < real).astype(np.float32)}


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


# ---- accounting -----------------------------------------------------------------------------

@pytest.mark.parametrize("q, sigma, steps, delta", [(0.01, 1.0, 100, 1e-5), (256 / 60000, 0.6, 700, 1e-5)])
def test_epsilon_is_dp_accountings(q, sigma, steps, delta):
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    reference = pld.PLDAccountant(value_discretization_interval=accounting.PLD_INTERVAL)
    reference.compose(event)
    assert accounting.epsilon(q, sigma, steps, delta) == reference.get_epsilon(delta)
    # The RDP cross-check is looser, never tighter by more than PLD's discretisation.
    check = rdp.RdpAccountant()
    check.compose(event)
    assert accounting.epsilon_rdp(q, sigma, steps, delta) == check.get_epsilon(delta)
    assert accounting.epsilon_rdp(q, sigma, steps, delta) >= accounting.epsilon(q, sigma, steps, delta) - 0.05


@pytest.mark.slow
def test_calibrated_noise_spends_the_target():
    sigma = accounting.calibrate_noise(0.01, 200, 3.0, 1e-5)
    spent = accounting.epsilon(0.01, sigma, 200, 1e-5)
    assert 0.99 * 3.0 <= spent <= 3.0
    assert accounting.epsilon(0.01, 0.98 * sigma, 200, 1e-5) > 3.0  # and no smaller noise would do


# ---- Poisson batches ---------------------------------------------------------------------------

def test_poisson_batches_are_deterministic_with_the_right_mean_size():
    n, q = 5000, 0.02
    sizes = [len(poisson.poisson_indices(7, step, n, q)) for step in range(300)]
    assert abs(np.mean(sizes) - q * n) < 4 * np.sqrt(q * n * (1 - q) / 300)
    np.testing.assert_array_equal(poisson.poisson_indices(7, 5, n, q), poisson.poisson_indices(7, 5, n, q))
    assert not np.array_equal(poisson.poisson_indices(7, 5, n, q), poisson.poisson_indices(7, 6, n, q))
    assert not np.array_equal(poisson.poisson_indices(7, 5, n, q), poisson.poisson_indices(8, 5, n, q))
    size = poisson.max_batch_size(n, q, multiple=8)
    assert size % 8 == 0 and stats.binom.sf(size, n, q) < poisson.OVERFLOW_PROBABILITY
    images = np.arange(n, dtype=np.float32)[:, None, None, None]
    batch = poisson.PoissonBatches(images, None, q, 7, 8).batch(5)
    real = int(batch["mask"].sum())
    assert batch["image"].shape[0] == size and real == len(poisson.poisson_indices(7, 5, n, q))
    np.testing.assert_array_equal(batch["image"][:real, 0, 0, 0], poisson.poisson_indices(7, 5, n, q))


def test_overflow_pads_further_instead_of_dropping(capsys):
    images = np.zeros((100, 1, 1, 1), np.float32)
    batches = poisson.PoissonBatches(images, None, 0.5, 0, 4)
    batches.size = 4  # force an overflow
    batch = batches.batch(0)
    assert batch["mask"].sum() == len(poisson.poisson_indices(0, 0, 100, 0.5)) and batches.overflows == 1
    assert "padded to" in capsys.readouterr().out


# ---- the DP-SGD step ---------------------------------------------------------------------------

@pytest.mark.slow
def test_clipping_bounds_every_per_example_gradient():
    family = dataclasses.replace(_vae(), optimizer=optax.sgd(1.0))
    dp = PrivateFamily(family, clip_norm=0.5, noise_multiplier=0.0, expected_batch_size=1.0)
    step = jax.jit(dp.update)
    state = family.init(jax.random.key(0))
    batch = _batch(8, 8)
    for row in range(0, 8, 3):  # one real example at a time: the update is minus its clipped gradient
        one = dict(batch, mask=(np.arange(8) == row).astype(np.float32))
        new, metrics = step(state, one, jax.random.key(1))
        change = optax.tree.norm(jax.tree.map(jnp.subtract, new.params, state.params))
        assert float(metrics["clipped"]) == 1.0 and 0.5 * 0.999 < float(change) <= 0.5 * 1.0001


@pytest.mark.slow
def test_dp_step_without_noise_or_clipping_is_the_plain_step():
    family = _vae()
    dp = PrivateFamily(family, clip_norm=1e9, noise_multiplier=0.0, expected_batch_size=8.0)
    state = family.init(jax.random.key(0))
    batch = _batch(8, 8)
    key = jax.random.key(3)
    private, _ = jax.jit(dp.update)(state, batch, key)
    # The DP step draws its latents from fold_in(key, 100) (mechanism: key_public).
    plain, _ = jax.jit(family.update)(state, {k: batch[k] for k in ("image", "label")}, jax.random.fold_in(key, 100))
    for a, b in zip(_leaves(private.params), _leaves(plain.params)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


@pytest.mark.slow
def test_one_device_equals_eight():
    family = _vae()
    dp = PrivateFamily(family, clip_norm=1.0, noise_multiplier=1.0, expected_batch_size=6.0)
    batch = _batch(16, 11)
    results = []
    for devices in (1, 8):
        mesh = parallel.data_mesh(devices)
        state = jax.jit(family.init, out_shardings=parallel.replicated(mesh))(jax.random.key(0))
        state, _ = make_step(dp, mesh)(state, parallel.shard_batch(mesh, batch), jax.random.key(5))
        results.append(_leaves(state.params))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # the noise was added once, the same


@pytest.mark.slow
def test_gan_generator_update_is_post_processing():
    """G's update reads no real data: two different real batches give bitwise the same G."""
    config = configs.resolve(configs.tiny("mlpgan", conditional=True))
    family = build_family(config, SHAPE, 3)
    dp = PrivateFamily(family, clip_norm=1.0, noise_multiplier=1.0, expected_batch_size=4.0)
    state = family.init(jax.random.key(0))
    step = jax.jit(dp.update)
    a, _ = step(state, _batch(8, 5, seed=1, tanh=True), jax.random.key(2))
    b, _ = step(state, _batch(8, 3, seed=2, tanh=True), jax.random.key(2))
    for x, y in zip(_leaves((a.g_params, a.ema_params)), _leaves((b.g_params, b.ema_params))):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(_leaves(a.d_params), _leaves(b.d_params)))


class _BatchNormCritic(nn.Module):
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, labels=None, train=True):
        x = nn.BatchNorm(use_running_average=not train)(x.reshape((x.shape[0], -1)))
        return nn.Dense(1)(x)


def test_batchnorm_on_the_private_path_is_a_clear_error():
    family = GANFamily(MLPGenerator(SHAPE, 8, 0, latent_dim=4), _BatchNormCritic(), optax.adam(1e-3), optax.adam(1e-3))
    with pytest.raises(PrivacyError, match="BatchNorm"):
        PrivateFamily(family, clip_norm=1.0, noise_multiplier=1.0, expected_batch_size=4.0)


# ---- config, budget -------------------------------------------------------------------------------

def test_dp_fields_are_validated():
    with pytest.raises(ConfigError, match="dp_delta"):
        configs.tiny("mlpvae", dp_delta=1e-5)  # delta without DP
    with pytest.raises(ConfigError, match="dp_clip_norm"):
        configs.tiny("mlpvae", dp_epsilon=1.0, dp_clip_norm=0.0)
    with pytest.raises(ConfigError, match="spectral_norm"):
        configs.tiny("dcgan", dp_epsilon=1.0, spectral_norm=True)


def test_training_past_the_budget_is_refused_with_the_cost():
    config = configs.tiny("mlpvae", dp_epsilon=1.0, dp_noise_multiplier=0.8, batch_size=16, steps=2000)
    spent = accounting.epsilon(16 / 1000, 0.8, 2000, 1e-5)
    with pytest.raises(PrivacyBudgetError, match=r"--allow-change dp_epsilon") as error:
        resolve_dp(config, 1000)
    assert f"epsilon {spent:.4f}" in str(error.value)
    resolved = resolve_dp(dataclasses.replace(config, dp_epsilon=round(spent + 0.01, 2)), 1000)
    assert resolved.dp_delta == 1e-5 and resolved.dp_noise_multiplier == 0.8


@pytest.mark.slow
def test_resume_is_bitwise(tmp_path):
    """Stopped after 2 steps and resumed to 4: bitwise the run never stopped (the Poisson draws too)."""
    from jsynth.train import loop

    config = configs.tiny("mlpvae", data="digits", conditional=True, dp_noise_multiplier=1.0, steps=4,
                          checkpoint_every=2, tensorboard=False)
    straight = loop.run(config, str(tmp_path / "straight"))
    loop.run(dataclasses.replace(config, steps=2), str(tmp_path / "resumed"))
    resumed = loop.run(config, str(tmp_path / "resumed"))
    for a, b in zip(_leaves(straight.params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
