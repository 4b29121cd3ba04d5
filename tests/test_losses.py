"""Closed-form and reference checks of the pure loss functions in jsynth.losses."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jsynth import losses as _losses


class _Jitted:
    """``losses.f`` jitted: one compile per function instead of one per primitive (2 slow cores)."""

    def __getattr__(self, name):
        fn = getattr(_losses, name)
        static = ("likelihood",) if name == "negative_elbo" else ()
        return jax.jit(fn, static_argnames=static)


losses = _Jitted()

RNG = np.random.default_rng(0)


def test_discriminator_loss_at_zero_logits_is_two_log_two():
    zeros = jnp.zeros((7,))
    assert float(losses.discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2), rel=1e-6)


def test_discriminator_loss_matches_binary_cross_entropy():
    real, fake = RNG.normal(size=9).astype(np.float32), RNG.normal(size=5).astype(np.float32)
    sig = lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    expected = np.mean(-np.log(sig(real))) + np.mean(-np.log(1.0 - sig(fake)))
    assert float(losses.discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-5)


def test_discriminator_loss_is_small_for_a_confident_correct_discriminator():
    assert float(losses.discriminator_loss(jnp.full((4,), 30.0), jnp.full((4,), -30.0))) < 1e-10


def test_nonsaturating_generator_loss_at_zero_is_log_two():
    assert float(losses.generator_loss_nonsaturating(jnp.zeros((3,)))) == pytest.approx(math.log(2), rel=1e-6)


def test_nonsaturating_generator_loss_is_minus_log_sigmoid_and_stays_finite():
    logits = np.array([-40.0, -3.0, 0.5, 20.0], np.float32)
    expected = np.mean(np.logaddexp(0.0, -logits.astype(np.float64)))  # -log sigmoid(x)
    value = float(losses.generator_loss_nonsaturating(logits))
    assert value == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(value)


def test_gaussian_kl_of_standard_normal_is_zero():
    kl = losses.gaussian_kl(jnp.zeros((3, 5)), jnp.zeros((3, 5)))
    assert kl.shape == (3,)
    np.testing.assert_allclose(kl, 0.0, atol=1e-7)


def test_gaussian_kl_matches_closed_form_per_example():
    mean = RNG.normal(size=(4, 6))
    sigma = RNG.uniform(0.2, 3.0, size=(4, 6))
    expected = 0.5 * np.sum(mean ** 2 + sigma ** 2 - 1.0 - np.log(sigma ** 2), axis=-1)
    kl = losses.gaussian_kl(jnp.asarray(mean, jnp.float32), jnp.asarray(np.log(sigma ** 2), jnp.float32))
    np.testing.assert_allclose(kl, expected, rtol=1e-5)
    assert np.all(np.asarray(kl) > 0)


def test_bernoulli_nll_matches_direct_formula():
    logits = RNG.normal(scale=3.0, size=(3, 4, 4, 1))
    x = RNG.uniform(size=(3, 4, 4, 1))  # fractional targets too: the continuous relaxation
    p = 1.0 / (1.0 + np.exp(-logits))
    expected = np.sum(-(x * np.log(p) + (1 - x) * np.log(1 - p)), axis=(1, 2, 3))
    nll = losses.bernoulli_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32))
    assert nll.shape == (3,)
    np.testing.assert_allclose(nll, expected, rtol=1e-5)


def test_gaussian_nll_matches_scipy_logpdf():
    logits = RNG.normal(size=(2, 3, 3, 1))
    x = RNG.uniform(size=(2, 3, 3, 1))
    for log_sigma in (-1.0, 0.0, 0.7):
        mean = 1.0 / (1.0 + np.exp(-logits))
        expected = -np.sum(scipy.stats.norm.logpdf(x, loc=mean, scale=np.exp(log_sigma)), axis=(1, 2, 3))
        nll = losses.gaussian_nll(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32),
                                  jnp.float32(log_sigma))
        np.testing.assert_allclose(nll, expected, rtol=1e-5)


def test_negative_elbo_weights_the_kl_by_beta():
    logits = jnp.asarray(RNG.normal(size=(5, 2, 2, 1)), jnp.float32)
    x = jnp.asarray(RNG.uniform(size=(5, 2, 2, 1)), jnp.float32)
    mean = jnp.asarray(RNG.normal(size=(5, 3)), jnp.float32)
    log_var = jnp.asarray(RNG.normal(scale=0.5, size=(5, 3)), jnp.float32)
    # float(...): np.mean of a JAX array is a JAX array, which pytest.approx cannot take (no .flat).
    recon = float(np.mean(np.asarray(losses.bernoulli_nll(logits, x))))
    kl = float(np.mean(np.asarray(losses.gaussian_kl(mean, log_var))))
    assert kl > 0.1  # so that beta visibly matters
    for beta in (0.0, 1.0, 4.0):
        loss, terms = losses.negative_elbo(logits, x, mean, log_var, beta=beta)
        assert float(loss) == pytest.approx(recon + beta * kl, rel=1e-5)
        assert float(terms["recon"]) == pytest.approx(recon, rel=1e-5)
        assert float(terms["kl"]) == pytest.approx(kl, rel=1e-5)


def test_negative_elbo_gaussian_likelihood_uses_log_sigma():
    logits = jnp.zeros((2, 2, 2, 1))
    x = jnp.full((2, 2, 2, 1), 0.5)  # equal to the decoder mean sigmoid(0): only the log-normaliser
    zeros = jnp.zeros((2, 3))
    loss, terms = losses.negative_elbo(logits, x, zeros, zeros, likelihood="gaussian", log_sigma=-1.0)
    expected = 4 * (-1.0 + 0.5 * math.log(2 * math.pi))
    assert float(terms["recon"]) == pytest.approx(expected, rel=1e-5)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_negative_elbo_rejects_an_unknown_likelihood():
    zeros = jnp.zeros((1, 2))
    with pytest.raises(ValueError, match="bernoulli"):
        losses.negative_elbo(jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1)), zeros, zeros,
                             likelihood="laplace")
