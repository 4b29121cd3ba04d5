"""VAE recipes of issue 11: KL warm-up, free bits, the IWAE objective, binarised training, FiLM
conditioning, residual conv blocks, active units and the importance-sampled NLL (``nll_nats``).

Each is checked against what it claims: closed forms (a linear-Gaussian model whose log p(x) is
known), an independent implementation (scipy densities), or the global-batch step (devices).
"""
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
import scipy.stats
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from helpers import (DIGITS_SHAPE, assert_trees_close, compilation_cache, fixed_batch, host,  # noqa: F401
                     tiny_family, trees_differ)
from jsynth import configs, losses, parallel
from jsynth.builders import build_family, build_vae
from jsynth.errors import InputError
from jsynth.evaluate import EvalOptions, latents, nll, real_splits
from jsynth.evaluate import options as eval_options
from jsynth.evaluate.posterior_metrics import posterior_metrics
from jsynth.families import HasPosterior, VAEFamily
from jsynth.families.vae import kl_weight
from jsynth.models.blocks import FiLM, ResBlock
from jsynth.models.vae import VAE, make_conv_vae
from jsynth.train import loop
from jsynth.train.steps import jit_over_mesh
from jsynth.trained import load_trained

KEY = jax.random.key(7)


# ---- the pure pieces --------------------------------------------------------------------------

def test_kl_weight_ramps_linearly_from_zero_to_beta():
    weights = [float(kl_weight(jnp.int32(s), 2.0, 10)) for s in (0, 1, 5, 10, 50)]
    assert weights == pytest.approx([0.0, 0.2, 1.0, 2.0, 2.0])
    assert kl_weight(jnp.int32(3), 0.5, 0) == 0.5  # no warm-up: beta itself, a Python float


def test_free_bits_floor_each_dimension_of_the_batch_mean_kl():
    kl_mean = jnp.array([0.05, 0.3, 2.0])
    # Jitted whole: one compile each instead of one per primitive (2 slow cores).
    value, grad = jax.jit(jax.value_and_grad(losses.free_bits_kl), static_argnums=1)(kl_mean, 0.25)
    assert float(value) == pytest.approx(0.25 + 0.3 + 2.0)           # sum_j max(0.25, KL_j)
    np.testing.assert_array_equal(grad, [0.0, 1.0, 1.0])              # a floored dimension is free
    # Decided by other (global-batch) means: dimension 0 counts, dimension 1 is floored.
    value = jax.jit(losses.free_bits_kl, static_argnums=1)(kl_mean, 0.25, jnp.array([0.4, 0.2, 2.0]))
    assert float(value) == pytest.approx(0.05 + 0.25 + 2.0)
    # In the loss: the batch mean per dimension, not each example's KL, meets the floor.
    mean = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
    elbo = jax.jit(lambda m, v: losses.negative_elbo(jnp.zeros((2, 2, 2, 1)), jnp.zeros((2, 2, 2, 1)), m, v,
                                                     free_bits=0.25))
    loss, terms = elbo(mean, jnp.zeros((2, 2)))
    recon = 4 * math.log(2.0)
    assert float(loss) == pytest.approx(recon + 0.5 + 0.25)       # KL per dim: 0.5 and 0 -> floored
    assert float(terms["kl"]) == pytest.approx(0.5)                # reported unfloored


def test_iwae_bound_is_the_elbo_at_one_sample_and_grows_with_k():
    rng = np.random.default_rng(0)
    log_lik, log_prior, log_q = (np.float32(rng.normal(size=(5, 4)) * s - m)
                                 for s, m in ((3.0, 40.0), (1.0, 2.0), (1.0, 1.0)))
    log_w = np.asarray(log_lik + log_prior - log_q)
    bound = jax.jit(losses.iwae_bound)
    np.testing.assert_allclose(bound(log_w[:, :1]), log_w[:, 0], rtol=1e-6)
    # log of a mean >= mean of the logs (Jensen): the bound over 4 samples is above their ELBOs.
    assert np.all(np.asarray(bound(log_w)) >= np.mean(log_w, axis=1))
    expected = scipy.special.logsumexp(log_w, axis=1) - math.log(4)
    np.testing.assert_allclose(bound(log_w), expected, rtol=1e-5)
    negative_iwae = jax.jit(losses.negative_iwae)
    loss, terms = negative_iwae(log_lik, log_prior, log_q)
    assert float(loss) == pytest.approx(-float(np.mean(expected)), rel=1e-5)
    assert float(terms["iwae_bound"]) == pytest.approx(-float(loss), rel=1e-6)
    assert float(terms["kl"]) == pytest.approx(float(np.mean(log_q - log_prior)), rel=1e-5)
    # beta = 0 (the start of a warm-up) weights the prior term out of every importance weight.
    loss0, terms0 = negative_iwae(log_lik, log_prior, log_q, beta=0.0)
    expected0 = scipy.special.logsumexp(np.asarray(log_lik), axis=1) - math.log(4)
    assert float(loss0) == pytest.approx(-float(np.mean(expected0)), rel=1e-5)
    assert float(terms0["iwae_bound"]) == pytest.approx(float(terms["iwae_bound"]))


def test_active_units_count_the_dimensions_whose_posterior_mean_varies():
    rng = np.random.default_rng(0)
    means = np.stack([rng.normal(0, 1.0, 2000), rng.normal(3.0, 0.05, 2000),   # var 1, var 0.0025
                      rng.normal(0, 0.2, 2000), np.full(2000, -1.0)], axis=1)  # var 0.04, var 0
    count, variances = latents.active_units(means)
    assert count == 2
    np.testing.assert_allclose(variances, [1.0, 0.0025, 0.04, 0.0], rtol=0.1, atol=1e-12)
    assert latents.active_units(means, threshold=0.001)[0] == 3


# ---- configuration --------------------------------------------------------------------------

def test_config_fields_reach_the_family_and_the_modules():
    config = configs.with_overrides(configs.tiny("convvae", conditional=True), [
        "kl_warmup_steps=5", "free_bits=0.1", "binarize=true", "vae_conditioning=film", "res_blocks=2"])
    family = build_family(configs.resolve(config), DIGITS_SHAPE, 10)
    assert (family.kl_warmup_steps, family.free_bits, family.binarize, family.iwae_samples) == (5, 0.1, True, 1)
    assert family.vae.decoder.film and family.vae.decoder.res_blocks == 2 and family.vae.encoder.res_blocks == 2
    assert isinstance(family, HasPosterior) and family.posterior.likelihood == "bernoulli"
    iwae = build_family(configs.resolve(configs.tiny("mlpvae", iwae_samples=5)), DIGITS_SHAPE, 0)
    assert iwae.iwae_samples == 5 and not iwae.vae.decoder.film


def test_nll_eval_options_are_settable_and_checked():
    options = eval_options.with_overrides(EvalOptions(), ["nll_samples=7", "nll_rows=0"])
    assert (options.nll_samples, options.nll_rows) == (7, 0) and EvalOptions().nll_samples == 5000
    with pytest.raises(InputError, match="nll_samples must be positive"):
        EvalOptions(nll_samples=0)
    with pytest.raises(InputError, match="nll_rows must be >= 0"):
        EvalOptions(nll_rows=-1)


@pytest.mark.parametrize("overrides, fragments", [
    (dict(kl_warmup_steps=-1), ["kl_warmup_steps=-1", "non-negative"]),
    (dict(free_bits=-0.5), ["free_bits=-0.5", "non-negative"]),
    (dict(iwae_samples=0), ["iwae_samples=0", "positive"]),
    (dict(iwae_samples=4, free_bits=0.5), ["free_bits=0.5", "iwae_samples=4"]),
    (dict(binarize=True, likelihood="gaussian"), ["binarize=True", "bernoulli"]),
    (dict(vae_conditioning="concat", conditional=True), ["vae_conditioning='concat'", "film"]),
    (dict(vae_conditioning="film"), ["vae_conditioning='film'", "conditional"]),
    (dict(res_blocks=2), ["res_blocks=2", "convvae"]),
    (dict(model="dcgan", iwae_samples=3), ["iwae_samples=3", "VAE option"]),
])
def test_bad_vae_fields_are_config_errors(overrides, fragments):
    base = dict(model="mlpvae")
    with pytest.raises(configs.ConfigError) as error:
        configs.TrainConfig(**dict(base, **overrides))
    for fragment in fragments:
        assert fragment in str(error.value)


# ---- modules ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_film_modulates_channels_by_label_and_residual_blocks_start_as_the_identity():
    h = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 3, 4)), jnp.float32)
    code = jnp.eye(2)
    film, block = jax.jit(FiLM().apply), jax.jit(ResBlock().apply)  # one compile each, not one per op
    variables = jax.jit(FiLM().init)(KEY, h, code)
    np.testing.assert_array_equal(film(variables, h, code), h)  # identity at init
    kernel = jnp.arange(16.0).reshape(2, 8) / 10  # label k -> (gamma, beta) = row k
    out = film({"params": {"Dense_0": {"kernel": kernel, "bias": jnp.zeros(8)}}}, h, code)
    for k in range(2):
        gamma, beta = kernel[k, :4], kernel[k, 4:]
        np.testing.assert_allclose(out[k], h[k] * (1 + gamma) + beta, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(block(jax.jit(ResBlock().init)(KEY, h), h), h)


def test_default_conv_vae_keeps_its_parameter_names():
    """Old checkpoints restore: the options add parameters only when switched on."""
    def names(vae):
        labels = jnp.zeros((1,), jnp.int32)
        shapes = jax.eval_shape(lambda: vae.init({"params": KEY, "noise": KEY}, jnp.zeros((1, 8, 8, 1)), labels))
        return {"/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(shapes)}

    plain = names(make_conv_vae(DIGITS_SHAPE, 10, width=4, latent_dim=3))
    assert not any("ResBlock" in n or "FiLM" in n for n in plain)
    assert {"params/decoder/ConvTranspose_1/kernel", "params/encoder/Conv_1/kernel"} <= plain
    rich = names(make_conv_vae(DIGITS_SHAPE, 10, width=4, latent_dim=3, film=True, res_blocks=1))
    assert plain < rich
    assert {n.split("/")[2] for n in rich - plain} == {"ResBlock_0", "ResBlock_1", "FiLM_0", "FiLM_1", "FiLM_2"}


# ---- the NLL estimator --------------------------------------------------------------------------
#
# A linear-Gaussian model: p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), W with orthogonal columns, so
# log p(x) = log N(x; b, WW^T + s^2 I) is closed form and the true posterior is diagonal Gaussian.

@dataclasses.dataclass(frozen=True)
class LinearGaussian:
    latent_dim: int = 2
    likelihood: str = "gaussian"
    exact: bool = True  # q = the true posterior; else a shifted, widened Gaussian

    def encode(self, variables, x, labels=None):
        w, b, s = variables["w"], variables["b"], variables["sigma"]
        x = x.reshape((x.shape[0], -1))
        var = 1.0 / (1.0 + jnp.sum(w * w, axis=0) / s ** 2)
        mean = var * ((x - b) @ w) / s ** 2
        if not self.exact:
            mean, var = mean + 0.5, var * 3.0
        return mean, jnp.broadcast_to(jnp.log(var), mean.shape)

    def log_likelihood(self, variables, z, x, labels=None):
        x = x.reshape((x.shape[0], -1))
        mu = z @ variables["w"].T + variables["b"]
        return jnp.sum(jax.scipy.stats.norm.logpdf(x, mu, variables["sigma"]), axis=-1)


def linear_gaussian(num_images, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(6, 2)))
    w = q * np.array([2.0, 0.7])
    variables = {"w": w.astype(np.float32), "b": rng.normal(size=6).astype(np.float32),
                 "sigma": np.float32(0.5)}
    covariance = w @ w.T + 0.25 * np.eye(6)
    x = rng.multivariate_normal(variables["b"], covariance, size=num_images).astype(np.float32)
    exact = np.atleast_1d(scipy.stats.multivariate_normal(variables["b"], covariance).logpdf(x))
    return variables, x.reshape((num_images, 6, 1, 1)), exact


def test_nll_of_a_linear_gaussian_model_is_exact_with_its_true_posterior():
    """Every importance weight p(x, z)/q(z|x) equals p(x) when q is the true posterior."""
    variables, x, exact = linear_gaussian(16)
    estimate = nll.estimate_log_marginal(LinearGaussian(), variables, x, num_samples=3)
    np.testing.assert_allclose(estimate, exact, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_nll_with_an_inexact_posterior_tightens_with_k_towards_the_closed_form():
    variables, x, exact = linear_gaussian(1)
    x = np.repeat(x, 512, axis=0)  # the same image: each row draws its own noise
    model = LinearGaussian(exact=False)
    elbo = nll.estimate_log_marginal(model, variables, x, num_samples=1)
    tight = nll.estimate_log_marginal(model, variables, x, num_samples=400, samples_per_step=100)
    # E[L_1] = ELBO = log p(x) - KL(q || posterior), in closed form for these Gaussians.
    w, s = variables["w"], variables["sigma"]
    post_var = 1.0 / (1.0 + np.sum(w * w, axis=0) / s ** 2)
    post_mean = post_var * ((x[0].ravel() - variables["b"]) @ w) / s ** 2
    q_mean, q_var = post_mean + 0.5, post_var * 3.0
    kl = 0.5 * np.sum(q_var / post_var + (q_mean - post_mean) ** 2 / post_var - 1 + np.log(post_var / q_var))
    assert np.mean(elbo) == pytest.approx(exact[0] - kl, abs=4 * np.std(elbo) / math.sqrt(len(elbo)))
    assert np.mean(elbo) < np.mean(tight) <= exact[0] + 0.01
    assert np.mean(tight) == pytest.approx(exact[0], abs=0.05)
    # The estimate depends on (seed, image, sample) only, not on how the samples are chunked.
    again = nll.estimate_log_marginal(model, variables, x[:16], num_samples=400, samples_per_step=64)
    np.testing.assert_allclose(again, tight[:16], rtol=1e-5)


@pytest.mark.slow
def test_vae_nll_at_one_sample_is_the_elbo_of_that_sample_and_tightens_with_k():
    _, family = tiny_family("mlpvae")
    variables = {"params": jax.jit(family.init)(jax.random.key(0)).params}
    x = (fixed_batch("unit", 64)["image"] > 0.5).astype(np.float32)
    one = nll.estimate_log_marginal(family.posterior, variables, x, num_samples=1, seed=3)
    # The same sample through the training path (VAE.__call__), densities from scipy.
    @jax.jit  # one compile, not one per operation
    def training_path(variables, x):
        eps = nll.sample_noise(jax.random.key(3), jnp.arange(64), jnp.arange(1), family.latent_dim)[:, 0]
        logits, mean, log_var = family.vae.apply(variables, x, noise=eps)
        return losses.bernoulli_nll(logits, x), mean + jnp.exp(0.5 * log_var) * eps, mean, log_var

    recon, z, mean, log_var = (np.asarray(a, np.float64) for a in training_path(variables, x))
    elbo = (-recon + scipy.stats.norm.logpdf(z).sum(1)
            - scipy.stats.norm.logpdf(z, mean, np.exp(0.5 * log_var)).sum(1))
    np.testing.assert_allclose(one, elbo, rtol=1e-5)
    many = nll.estimate_log_marginal(family.posterior, variables, x, num_samples=50, seed=3)
    assert np.mean(one) < np.mean(many) < 0.0  # E[L_1] <= E[L_50] <= log p(x) < 0


# ---- training steps: the per-device function, 1 device == 8 devices -------------------------------

def sgd_vae(**options):
    """A tiny MLP VAE under SGD (Adam would hide a gradient N times too large) and its family maker."""
    config = configs.resolve(configs.tiny("mlpvae", optimizer="sgd", learning_rate=0.05, **options))
    vae, tx = build_vae(config, DIGITS_SHAPE, 0), optax.sgd(0.05)
    fields = {k: getattr(config, k) for k in ("kl_warmup_steps", "free_bits", "iwae_samples", "binarize")}
    return lambda axis_name: VAEFamily(vae, tx, axis_name=axis_name, **fields)


def train(step, state, num_steps=3):
    history = []
    for i in range(num_steps):
        state, metrics = step(state, fixed_batch("unit", 16, seed=i), jax.random.fold_in(KEY, i))
        history.append(host(metrics))
    return host(state), history


def per_device(make_family, state):
    mesh = Mesh(np.array(jax.devices()[:8]), ("batch",))
    step = jax.jit(jax.shard_map(make_family("batch").update, mesh=mesh, in_specs=(P(), P("batch"), P()),
                                 out_specs=P()))
    return train(step, jax.device_put(state, NamedSharding(mesh, P())))


@pytest.mark.slow
def test_free_bits_and_warm_up_per_device_equal_the_global_batch_step():
    make = sgd_vae(free_bits=0.0, kl_warmup_steps=2)
    state = host(jax.jit(make(None).init)(jax.random.key(0)))
    # A floor amid the initial per-dimension KLs: some dimensions floored, some not, and the
    # devices' own batch means fall on both sides of it (the case a per-device decision gets wrong).
    x = fixed_batch("unit", 16)["image"]
    mean, log_var = make(None).vae.apply({"params": state.params}, x, method=VAE.encode)
    kl = np.sort(np.mean(np.asarray(losses.gaussian_kl_per_dim(mean, log_var)), axis=0))
    floor = float((kl[len(kl) // 2 - 1] + kl[len(kl) // 2]) / 2)
    make = sgd_vae(free_bits=floor, kl_warmup_steps=2)
    reference, reference_history = train(jax.jit(make(None).update), state)
    mine, history = per_device(make, state)
    assert trees_differ(reference, state)
    assert [h["kl_weight"] for h in history] == pytest.approx([0.0, 0.5, 1.0])
    assert_trees_close(mine, reference, rtol=2e-4, atol=2e-5)
    for a, b in zip(history, reference_history):
        assert_trees_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_iwae_with_binarised_data_is_the_same_on_one_device_eight_and_per_device():
    make = sgd_vae(iwae_samples=3, binarize=True)
    family = make(None)
    state = host(jax.jit(family.init)(jax.random.key(0)))
    one, history_one = train(jax.jit(family.update), state)
    mesh = parallel.data_mesh(8)
    eight, history_eight = train(jit_over_mesh(family.update, mesh), parallel.replicate(mesh, state))
    mine, history_mine = per_device(make, state)
    assert set(history_one[0]) == {"loss", "recon", "kl", "iwae_bound"}
    assert trees_differ(one, state)
    for other, other_history in ((eight, history_eight), (mine, history_mine)):
        assert_trees_close(other, one, rtol=2e-4, atol=2e-5)
        for a, b in zip(other_history, history_one):
            assert_trees_close(a, b, rtol=1e-4, atol=1e-5)


# ---- what `jsynth eval --workdir` adds for a VAE ------------------------------------------------

@pytest.mark.slow
def test_a_trained_bernoulli_vae_reports_nll_and_active_units(tmp_path):
    """``posterior_metrics`` on a run restored from its checkpoint, as ``evaluate_run`` calls it (the
    rest of ``jsynth eval`` -- feature net, TSTR, privacy -- is test_eval's)."""
    workdir = str(tmp_path / "vae")
    loop.run(configs.tiny("mlpvae", binarize=True, kl_warmup_steps=3), workdir)
    model = load_trained(workdir)
    heldout = real_splits("digits").heldout
    options = EvalOptions(nll_samples=20, nll_rows=64)
    results, protocol = posterior_metrics(model, heldout, options)
    assert 0 < results["nll_nats"] < 64 * math.log(2) + 20  # 64 binary pixels: ~ 44 nats if uninformed
    assert 0 <= results["active_units"] <= 8
    assert protocol["nll"]["k"] == 20 and protocol["nll"]["images"] == 64
    assert protocol["nll"]["trained_on_binarized"] is True and "Bernoulli" in protocol["nll"]["inputs"]
    assert protocol["active_units"]["threshold"] == 0.01
    # A GAN has no posterior: nothing is added; nll_rows=0 skips the VAE's numbers.
    assert posterior_metrics(dataclasses.replace(model, family=object()), heldout, options) == ({}, {})
    assert posterior_metrics(model, heldout, EvalOptions(nll_rows=0))[0] == {}
    # A VAE trained on grey levels gets no nll_nats (the binarised benchmark is not its likelihood).
    grey = dataclasses.replace(model, config=dataclasses.replace(model.config, binarize=False))
    results, protocol = posterior_metrics(grey, heldout, options)
    assert "nll_nats" not in results and "binarize=true" in protocol["nll"]["skipped"]
    assert 0 <= results["active_units"] <= 8


def test_film_is_the_default_for_conditional_vaes_and_old_configs_keep_input():
    assert configs.resolve(configs.TrainConfig(model="mlpvae", conditional=True)).vae_conditioning == "film"
    assert configs.resolve(configs.TrainConfig(model="convvae")).vae_conditioning == "input"
    assert configs.resolve(configs.TrainConfig(model="dcgan")).vae_conditioning is None  # not a VAE
    # A config.json written before the field existed describes a run that fed the label at the input.
    old = json.loads(configs.resolve(configs.TrainConfig(model="mlpvae", conditional=True)).to_json())
    del old["vae_conditioning"]
    assert configs.from_json(json.dumps(old)).vae_conditioning == "input"
    gan = json.loads(configs.resolve(configs.TrainConfig(model="dcgan")).to_json())
    del gan["vae_conditioning"]
    assert configs.from_json(json.dumps(gan)).vae_conditioning is None
