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


def discriminator_loss_hinge(real_logits, fake_logits):
    """Hinge discriminator loss (Lim & Ye 2017; Miyato et al. 2018).

    L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], each averaged over its batch.
    """
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def critic_loss_wasserstein(real_logits, fake_logits):
    """Wasserstein critic loss (Arjovsky et al. 2017): L_D = E[D(G(z))] - E[D(x)].

    Its negative estimates the Wasserstein-1 distance only while the critic is (about)
    1-Lipschitz: pair it with ``gradient_penalty`` or spectral normalisation.
    """
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def generator_loss_critic(fake_logits):
    """L_G = -E[D(G(z))]: the generator loss of both the hinge and the Wasserstein GAN."""
    return -jnp.mean(fake_logits)


def _input_gradients(critic, x):
    """d critic(x)_i / d x_i for every example i, in float32.

    The critic's outputs are summed over the batch before differentiating, which gives each
    example's own gradient because a discriminator treats examples independently (ours have no
    BatchNorm). The sum is taken in float32, and the gradient w.r.t. a float32 input comes back
    in float32 even when the critic computes in bfloat16.
    """
    return jax.grad(lambda x: jnp.sum(critic(x).astype(jnp.float32)))(x.astype(jnp.float32))


def _squared_norms(grads):
    """||g_i||^2 over all non-batch axes, per example, in float32."""
    return jnp.sum(jnp.square(grads.astype(jnp.float32)).reshape((grads.shape[0], -1)), axis=-1)


def gradient_penalty(critic, real, fake, eps):
    """WGAN-GP's penalty (Gulrajani et al. 2017): E[(||grad_x critic(x_hat)||_2 - 1)^2].

    x_hat_i = eps_i * real_i + (1 - eps_i) * fake_i, one ``eps`` in [0, 1] per example (shape
    (B,)); the norm is over all of an example's axes. Interpolation, gradient norm and mean are
    computed in float32 whatever the inputs' dtype: in bfloat16 the squares of small gradient
    entries would underflow and the norm lose most of its digits.

    Args:
      critic: ``x (B, ...) -> scores (B,)``; differentiable in x.
      real, fake: (B, ...) arrays (stop the fake's gradient first to keep the generator out).
      eps: (B,) interpolation weights.
    Returns:
      The scalar penalty (float32).
    """
    eps = eps.astype(jnp.float32).reshape((-1,) + (1,) * (real.ndim - 1))
    mixed = eps * real.astype(jnp.float32) + (1.0 - eps) * fake.astype(jnp.float32)
    # The 1e-12 keeps sqrt's gradient finite where a critic's input gradient is exactly zero.
    norms = jnp.sqrt(_squared_norms(_input_gradients(critic, mixed)) + 1e-12)
    return jnp.mean(jnp.square(norms - 1.0))


def r1_penalty(critic, real, gamma):
    """R1 regulariser (Mescheder et al. 2018): gamma / 2 * E[||grad_x D(x)||^2] on real data.

    Computed in float32 like ``gradient_penalty``. Returns the scalar penalty.
    """
    return 0.5 * gamma * jnp.mean(_squared_norms(_input_gradients(critic, real)))


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
