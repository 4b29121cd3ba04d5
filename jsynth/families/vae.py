"""The VAE family: an encoder and a decoder trained on the beta-weighted negative ELBO (or the
IWAE bound), sampled by decoding standard normal latents.

Training recipes, each a field (``jsynth.builders`` sets them from the config): ``beta`` weights
the KL term, ``kl_warmup_steps`` ramps that weight from 0 (Bowman et al. 2016; computed from
``state.step``, so no state is added and resumes are exact), ``free_bits`` floors each latent
dimension's KL (Kingma et al. 2016), ``iwae_samples`` > 1 trains on the IWAE bound (Burda et al.
2016), and ``binarize`` trains on data binarised afresh every step (x ~ Bernoulli(pixel)), the
setting in which the Bernoulli likelihood is a true likelihood and ``jsynth.evaluate.nll``'s
estimate compares with the literature's.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jsynth import losses
from jsynth.configs import LIKELIHOODS
from jsynth.errors import InputError
from jsynth.families.interface import count_parameters
from jsynth.models.vae import VAE, decoder_mean
from jsynth.train.steps import mean_over, normal_rows, uniform_rows, vary

PyTree = Any


@flax.struct.dataclass
class VAEState:
    step: jnp.ndarray
    params: PyTree
    opt_state: PyTree


@dataclasses.dataclass(frozen=True)
class VAEDecode:
    """The decoder's mean image in [0, 1] (Bernoulli and Gaussian likelihoods alike); hashable
    like ``jsynth.families.gan.GeneratorDecode``."""

    vae: VAE

    @property
    def latent_dim(self) -> int:
        return self.vae.latent_dim

    @property
    def num_classes(self) -> int:
        return self.vae.num_classes

    def __call__(self, variables, z, labels=None):
        return decoder_mean(self.vae.apply(variables, z, labels, method=VAE.decode))


@dataclasses.dataclass(frozen=True)
class VAEPosterior:
    """The VAE as a latent-variable model: q(z|x) and log p(x|z); hashable (a jit cache key).

    What ``jsynth.evaluate.nll`` (importance-sampled log p(x)) and ``jsynth.evaluate.latents``
    (active units) need; ``importance_terms`` is the same computation the IWAE objective trains on.
    """

    vae: VAE
    likelihood: str

    @property
    def latent_dim(self) -> int:
        return self.vae.latent_dim

    def encode(self, variables, x, labels=None):
        """(mean, log_var) of q(z | x), each (B, latent_dim)."""
        return self.vae.apply(variables, x, labels, method=VAE.encode)

    def log_likelihood(self, variables, z, x, labels=None):
        """log p(x | z) per row, (B,), for latents z (B, latent_dim) and images x (B, H, W, C)."""
        logits = self.vae.apply(variables, z, labels, method=VAE.decode)
        return losses.log_likelihood(logits, x, self.likelihood, variables["params"]["log_sigma"])


def importance_terms(posterior, variables, x, labels, eps, encoded=None):
    """log p(x|z_i), log p(z_i) and log q(z_i|x) for z_i = mean + sigma * eps_i, each (B, k).

    Args:
      posterior: ``encode(variables, x, labels)`` and ``log_likelihood(variables, z, x, labels)``
        (a ``VAEPosterior``, or any model of that shape).
      eps: (B, k, D) standard normal noise, k samples per row.
      encoded: (mean, log_var) of ``x`` if already computed (``encode`` is then not called).
    """
    mean, log_var = posterior.encode(variables, x, labels) if encoded is None else encoded
    rows, k, dim = eps.shape
    z = mean[:, None, :] + jnp.exp(0.5 * log_var)[:, None, :] * eps

    def repeat(a):  # each row k times in a row, the order of z's (rows, k) reshaped
        return None if a is None else jnp.repeat(a, k, axis=0)

    log_lik = posterior.log_likelihood(variables, z.reshape((rows * k, dim)), repeat(x), repeat(labels))
    log_prior = losses.standard_normal_log_density(z)
    log_q = losses.diagonal_normal_log_density(z, mean[:, None, :], log_var[:, None, :])
    return log_lik.reshape((rows, k)), log_prior, log_q


def kl_weight(step, beta: float, warmup_steps: int):
    """The KL term's weight at ``step``: beta * min(1, step / warmup_steps) (beta when no warm-up)."""
    if warmup_steps == 0:
        return beta
    return beta * jnp.minimum(1.0, step.astype(jnp.float32) / warmup_steps)


def binarized(x, uniform):
    """x ~ Bernoulli(x) elementwise from uniform [0, 1) noise of x's shape: 1.0 where uniform < x."""
    return (uniform < x).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class VAEFamily:
    """A VAE (``jsynth.models.VAE``); ``latent_dim``, ``num_classes`` and the image shape are its own."""

    vae: VAE
    optimizer: optax.GradientTransformation
    beta: float = 1.0                 # weight of the KL term
    likelihood: str = "bernoulli"     # or "gaussian" (scale: the VAE's learned log_sigma)
    kl_warmup_steps: int = 0          # the KL weight ramps linearly from 0 to beta over these steps
    free_bits: float = 0.0            # nats per latent dimension free of KL cost (0: off)
    iwae_samples: int = 1             # k > 1: train on the IWAE bound with k samples (1: the ELBO)
    binarize: bool = False            # train on x ~ Bernoulli(pixel), drawn afresh each step
    axis_name: str | None = None

    data_range: ClassVar[str] = "unit"
    device_rows: ClassVar[int | None] = None  # an MLP/conv decoder's matrix products want the rows together

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise InputError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if not self.beta >= 0.0:
            raise InputError(f"beta must be >= 0, got {self.beta}")
        if self.kl_warmup_steps < 0 or not self.free_bits >= 0.0 or self.iwae_samples < 1:
            raise InputError(f"need kl_warmup_steps >= 0, free_bits >= 0 and iwae_samples >= 1, got "
                             f"{self.kl_warmup_steps}, {self.free_bits}, {self.iwae_samples}")
        if self.iwae_samples > 1 and self.free_bits:
            raise InputError("free_bits floors the ELBO's analytic KL per dimension; the IWAE bound "
                             "(iwae_samples > 1) has no such term: use one or the other")
        if self.binarize and self.likelihood != "bernoulli":
            raise InputError(f"binarize needs the bernoulli likelihood, got {self.likelihood!r}")

    @property
    def latent_dim(self) -> int:
        return self.vae.latent_dim

    @property
    def num_classes(self) -> int:
        return self.vae.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.vae.image_shape

    @property
    def decode(self) -> VAEDecode:
        return VAEDecode(self.vae)

    @property
    def posterior(self) -> VAEPosterior:
        return VAEPosterior(self.vae, self.likelihood)

    def _init_variables(self, key):
        init_key, noise_key = jax.random.split(key)
        labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
        return self.vae.init({"params": init_key, "noise": noise_key}, jnp.zeros((1,) + self.image_shape), labels)

    def init(self, key) -> VAEState:
        params = self._init_variables(key)["params"]
        return VAEState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def update(self, state: VAEState, batch, key):
        """Descends the beta-weighted negative ELBO (or, with ``iwae_samples`` > 1, the IWAE loss).

        The noise (latents, and binarisation) is drawn for the global batch as ``normal_rows``
        draws it, so a step's result does not depend on the device count.
        """
        x = batch["image"]
        labels = batch["label"] if self.num_classes else None
        if self.binarize:
            x = binarized(x, uniform_rows(jax.random.fold_in(key, 1), x.shape, self.axis_name))
        weight = kl_weight(state.step, self.beta, self.kl_warmup_steps)
        if self.iwae_samples > 1:
            noise = normal_rows(key, (x.shape[0], self.iwae_samples, self.latent_dim), self.axis_name)
        else:
            noise = normal_rows(key, (x.shape[0], self.latent_dim), self.axis_name)

        def loss_fn(params):
            decide_by = None
            if self.free_bits and self.axis_name is not None and self.iwae_samples == 1:
                # The global batch's per-dimension KL decides the floor on every device (see free_bits_kl).
                mean, log_var = self.vae.apply({"params": params}, x, labels, method=VAE.encode)
                decide_by = mean_over(jax.lax.stop_gradient(
                    jnp.mean(losses.gaussian_kl_per_dim(mean, log_var), axis=0)), self.axis_name)
            return self._objective(params, x, labels, noise, weight, decide_by)

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(vary(state.params, self.axis_name))
        grads = mean_over(grads, self.axis_name)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        new_state = VAEState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state)
        metrics = {"loss": loss, **terms}
        if self.kl_warmup_steps:
            metrics["kl_weight"] = weight
        return new_state, mean_over(metrics, self.axis_name)

    def _objective(self, params, x, labels, noise, weight, free_bits_decide_by=None):
        """(loss, terms): the negative ELBO (or IWAE loss) of images ``x`` with latent ``noise``."""
        if self.iwae_samples > 1:
            terms = importance_terms(self.posterior, {"params": params}, x, labels, noise)
            return losses.negative_iwae(*terms, beta=weight)
        logits, mean, log_var = self.vae.apply({"params": params}, x, labels, noise=noise)
        return losses.negative_elbo(logits, x, mean, log_var, beta=weight, likelihood=self.likelihood,
                                    log_sigma=params["log_sigma"], free_bits=self.free_bits,
                                    free_bits_decide_by=free_bits_decide_by)

    # ---- differential privacy (jsynth.privacy.mechanism.PrivateGradients) ----------------------
    def private_params(self, state: VAEState):
        """Every parameter: the encoder reads the data and the decoder is fitted to it."""
        return state.params

    def private_statistics(self, state: VAEState):
        return {}  # a VAE keeps no batch statistics

    def public_inputs(self, state: VAEState, key, rows: int) -> dict:
        """The latent noise (and binarisation noise) of each row, drawn as ``update`` draws them."""
        shape = (rows, self.iwae_samples, self.latent_dim) if self.iwae_samples > 1 else (rows, self.latent_dim)
        public = {"noise": normal_rows(key, shape, self.axis_name)}
        if self.binarize:
            public["uniform"] = uniform_rows(jax.random.fold_in(key, 1), (rows,) + self.image_shape, self.axis_name)
        return public

    def example_loss(self, state: VAEState, params, example: dict, public: dict, key):
        """One example's loss (free bits then floor that example's own KL per dimension)."""
        del key
        x = example["image"]
        if self.binarize:
            x = binarized(x, public["uniform"])
        labels = example["label"] if self.num_classes else None
        return self._objective(params, x, labels, public["noise"], kl_weight(state.step, self.beta, self.kl_warmup_steps))

    def apply_private_gradients(self, state: VAEState, grads, public_key, rows: int):
        del public_key, rows
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        return VAEState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                        opt_state=opt_state), {}

    def sample_variables(self, state: VAEState, use_ema: bool = True) -> dict:
        """The VAE's parameters (a VAE keeps no EMA: ``use_ema`` changes nothing)."""
        del use_ema
        return {"params": state.params}

    def sampling_shapes(self, use_ema: bool = True) -> VAEState:
        del use_ema
        params = jax.eval_shape(self._init_variables, jax.random.key(0))["params"]
        return VAEState(step=None, params=params, opt_state=None)

    def for_sampling(self, variables: dict):
        return self.decode, variables

    def parameter_counts(self, state: VAEState) -> dict[str, int]:
        return {"params": count_parameters(state.params)}
