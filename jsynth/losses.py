"""Pure loss functions over arrays. Each returns a scalar (and, where useful, named terms)."""
from __future__ import annotations

import math

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


def gaussian_kl_per_dim(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, 1)) per example and latent dimension.

    KL_j = 0.5 * (mean_j^2 + exp(log_var_j) - 1 - log_var_j).
    """
    return 0.5 * (jnp.square(mean) + jnp.exp(log_var) - 1.0 - log_var)


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over latent dimensions.

    KL = 0.5 * sum(mean^2 + exp(log_var) - 1 - log_var).
    """
    return jnp.sum(gaussian_kl_per_dim(mean, log_var), axis=-1)


def free_bits_kl(kl_mean, free_bits, decide_by=None):
    """The free-bits KL term (Kingma et al. 2016): sum_j max(free_bits, KL_j).

    Args:
      kl_mean: (D,) the batch-mean KL of each latent dimension j.
      free_bits: nats each dimension may carry for free (a Python float).
      decide_by: (D,) the batch-mean KLs that decide which dimensions sit at the floor (default
        ``kl_mean``). A device's share of a batch passes the global batch's means: a floored
        dimension then adds the constant ``free_bits`` (no gradient) on every device alike, so the
        devices' values and gradients average to the global batch's.
    """
    decide = kl_mean if decide_by is None else jax.lax.stop_gradient(decide_by)
    return jnp.sum(jnp.where(decide > free_bits, kl_mean, free_bits))


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


def log_likelihood(logits, x, likelihood="bernoulli", log_sigma=0.0):
    """log p(x | z) per example from decoder logits: -bernoulli_nll or -gaussian_nll."""
    if likelihood == "bernoulli":
        return -bernoulli_nll(logits, x)
    if likelihood == "gaussian":
        return -gaussian_nll(logits, x, log_sigma)
    raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")


def negative_elbo(logits, x, mean, log_var, *, beta=1.0, likelihood="bernoulli", log_sigma=0.0,
                  free_bits=0.0, free_bits_decide_by=None):
    """beta-VAE loss: E[-log p(x|z)] + beta * KL(q(z|x) || p(z)), averaged over the batch.

    With ``free_bits`` > 0 (a Python float) the KL term is ``free_bits_kl`` of the batch-mean KL
    per latent dimension (``free_bits_decide_by``: see there). ``beta`` may be traced (a KL warm-up).

    Returns (loss, {"recon": ..., "kl": ...}), "kl" unfloored. With beta = 1 and no free bits this
    is the negative ELBO (nats).
    """
    recon = -log_likelihood(logits, x, likelihood, log_sigma)
    kl_dims = gaussian_kl_per_dim(mean, log_var)
    kl = jnp.sum(kl_dims, axis=-1)
    if free_bits:
        loss = jnp.mean(recon) + beta * free_bits_kl(jnp.mean(kl_dims, axis=0), free_bits, free_bits_decide_by)
    else:
        loss = jnp.mean(recon + beta * kl)
    return loss, {"recon": jnp.mean(recon), "kl": jnp.mean(kl)}


def standard_normal_log_density(z):
    """log N(z; 0, I), summed over the last axis: -0.5 * sum(z^2 + log(2 pi))."""
    return -0.5 * jnp.sum(jnp.square(z) + math.log(2 * math.pi), axis=-1)


def diagonal_normal_log_density(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), summed over the last axis.

    = -0.5 * sum((z - mean)^2 / exp(log_var) + log_var + log(2 pi)).
    """
    return -0.5 * jnp.sum(jnp.square(z - mean) * jnp.exp(-log_var) + log_var + math.log(2 * math.pi), axis=-1)


def iwae_bound(log_weights):
    """log (1/k) sum_i exp(log_weights_i) over the last axis (k importance samples), per example.

    With log w_i = log p(x, z_i) - log q(z_i|x), z_i ~ q(z|x), this is the IWAE bound L_k (Burda et
    al. 2016): L_1 is the ELBO, E[L_k] <= E[L_{k+1}] <= log p(x), and L_k -> log p(x) as k grows
    (the importance-sampled marginal likelihood).
    """
    k = log_weights.shape[-1]
    return jax.nn.logsumexp(log_weights, axis=-1) - math.log(k)


def negative_iwae(log_likelihood, log_prior, log_posterior, *, beta=1.0):
    """The IWAE loss: -mean over the batch of log (1/k) sum_i w_i, arrays (B, k) per sample i.

    log w_i = log p(x|z_i) + beta * (log p(z_i) - log q(z_i|x)). With beta = 1 this is the IWAE
    bound (``iwae_bound``); ``beta`` < 1 (a KL warm-up, possibly traced) down-weights the prior term.

    Returns (loss, {"recon": mean -log p(x|z), "kl": mean log q(z|x) - log p(z) (Monte Carlo),
    "iwae_bound": mean L_k at beta = 1 (nats; higher is better)}).
    """
    log_ratio = log_prior - log_posterior
    loss = -jnp.mean(iwae_bound(log_likelihood + beta * log_ratio))
    bound = jnp.mean(iwae_bound(jax.lax.stop_gradient(log_likelihood + log_ratio)))
    return loss, {"recon": -jnp.mean(log_likelihood), "kl": -jnp.mean(log_ratio), "iwae_bound": bound}
