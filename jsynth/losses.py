"""Pure loss functions over arrays. Each returns a scalar (and, where useful, named terms)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def discriminator_loss(real_logits, fake_logits):
    """Standard GAN discriminator loss (Goodfellow et al. 2014) on logits.

    L_D = E[-log sigmoid(D(x))] + E[-log(1 - sigmoid(D(G(z))))]
        = BCE(D(x), 1) + BCE(D(G(z)), 0), each averaged over its batch.
    """
    real = optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
    fake = optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits))
    return jnp.mean(real) + jnp.mean(fake)


def generator_loss_nonsaturating(fake_logits):
    """Non-saturating generator loss: L_G = E[-log sigmoid(D(G(z)))] = BCE(D(G(z)), 1).

    Its gradient stays large while the discriminator confidently rejects the fakes, unlike the
    minimax form E[log(1 - sigmoid(D(G(z))))].
    """
    return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)))


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over latent dimensions.

    KL = 0.5 * sum(mean^2 + exp(log_var) - 1 - log_var).
    """
    return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(log_var) - 1.0 - log_var, axis=-1)


def bernoulli_nll(logits, x):
    """-log p(x | logits) per example for a Bernoulli decoder, summed over pixels; x in [0, 1]."""
    per_pixel = optax.sigmoid_binary_cross_entropy(logits, x)
    return jnp.sum(per_pixel.reshape((x.shape[0], -1)), axis=-1)


def gaussian_nll(logits, x, log_sigma):
    """-log N(x; sigmoid(logits), exp(log_sigma)^2) per example, summed over pixels.

    = sum(0.5 * ((x - mu) / sigma)^2 + log_sigma + 0.5 * log(2 pi)).
    """
    mean = jax.nn.sigmoid(logits)
    per_pixel = 0.5 * jnp.square((x - mean) * jnp.exp(-log_sigma)) + log_sigma + 0.5 * jnp.log(2 * jnp.pi)
    return jnp.sum(per_pixel.reshape((x.shape[0], -1)), axis=-1)


def negative_elbo(logits, x, mean, log_var, *, beta=1.0, likelihood="bernoulli", log_sigma=0.0):
    """beta-VAE loss: E[-log p(x|z)] + beta * KL(q(z|x) || p(z)), averaged over the batch.

    Returns (loss, {"recon": ..., "kl": ...}). With beta = 1 this is the negative ELBO (nats).
    """
    if likelihood == "bernoulli":
        recon = bernoulli_nll(logits, x)
    elif likelihood == "gaussian":
        recon = gaussian_nll(logits, x, log_sigma)
    else:
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
    kl = gaussian_kl(mean, log_var)
    loss = jnp.mean(recon + beta * kl)
    return loss, {"recon": jnp.mean(recon), "kl": jnp.mean(kl)}
