"""The VAE family: an encoder and a decoder trained on the beta-weighted negative ELBO, sampled
by decoding standard normal latents."""
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
from jsynth.train.steps import mean_over, normal_rows, vary

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
class VAEFamily:
    """A VAE (``jsynth.models.VAE``); ``latent_dim``, ``num_classes`` and the image shape are its own."""

    vae: VAE
    optimizer: optax.GradientTransformation
    beta: float = 1.0                 # weight of the KL term
    likelihood: str = "bernoulli"     # or "gaussian" (scale: the VAE's learned log_sigma)
    axis_name: str | None = None

    data_range: ClassVar[str] = "unit"
    device_rows: ClassVar[int | None] = None  # an MLP/conv decoder's matrix products want the rows together

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise InputError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if not self.beta >= 0.0:
            raise InputError(f"beta must be >= 0, got {self.beta}")

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

    def _init_variables(self, key):
        init_key, noise_key = jax.random.split(key)
        labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
        return self.vae.init({"params": init_key, "noise": noise_key}, jnp.zeros((1,) + self.image_shape), labels)

    def init(self, key) -> VAEState:
        params = self._init_variables(key)["params"]
        return VAEState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def update(self, state: VAEState, batch, key):
        """Descends the beta-weighted negative ELBO."""
        x = batch["image"]
        labels = batch["label"] if self.num_classes else None
        noise = normal_rows(key, (x.shape[0], self.latent_dim), self.axis_name)

        def loss_fn(params):
            logits, mean, log_var = self.vae.apply({"params": params}, x, labels, noise=noise)
            return losses.negative_elbo(logits, x, mean, log_var, beta=self.beta, likelihood=self.likelihood,
                                        log_sigma=params["log_sigma"])

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(vary(state.params, self.axis_name))
        grads = mean_over(grads, self.axis_name)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        new_state = VAEState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state)
        return new_state, mean_over({"loss": loss, **terms}, self.axis_name)

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
