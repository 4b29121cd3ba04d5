"""The GAN family: a generator and a discriminator trained with the non-saturating loss, sampled
from an EMA of the generator's weights."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jsynth import losses
from jsynth.data.model_range import from_model_range
from jsynth.errors import InputError
from jsynth.families.interface import count_parameters
from jsynth.models import DCGANGenerator
from jsynth.models.subpixel import TRANSFORMED
from jsynth.sampling import CONV_DEVICE_ROWS
from jsynth.train.steps import device_key, mean_over, normal_rows, vary

PyTree = Any


@flax.struct.dataclass
class GANState:
    step: jnp.ndarray          # int32 scalar: steps taken
    g_params: PyTree
    g_batch_stats: PyTree      # BatchNorm running statistics ({} for nets without BatchNorm)
    g_opt_state: PyTree
    d_params: PyTree
    d_opt_state: PyTree
    ema_params: PyTree         # EMA of g_params: what samples come from


@dataclasses.dataclass(frozen=True)
class GeneratorDecode:
    """The generator in inference mode (running BatchNorm statistics), mapped from [-1, 1] to [0, 1].

    A frozen dataclass rather than a closure: two decoders of equal generators are equal and
    hash alike, so ``jsynth.sampling.make_chunk_fn`` reuses one compiled chunk function for
    every grid, in-loop FD and evaluation of a run instead of tracing again.
    """

    generator: nn.Module

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    def __call__(self, variables, z, labels=None):
        return from_model_range(self.generator.apply(variables, z, labels, train=False), "tanh")


def with_transformed_kernels(generator: DCGANGenerator, variables) -> tuple[DCGANGenerator, dict]:
    """An inference-only generator and ``variables`` plus its Winograd-transformed kernels.

    Sampling runs the generator over millions of rows with fixed weights; computed here once,
    the transformed kernels are not recomputed in every chunk (on dcgan64's 4x4 layer they
    outweigh a chunk of 128 rows). Returns ``(generator.clone(kernels_ahead=True), variables
    with the TRANSFORMED collection)``: only that clone reads the collection, so the training
    generator can never use a stale transform. After a training step, call again.
    """
    inference = generator.clone(kernels_ahead=True)
    z = jnp.zeros((1, generator.latent_dim), jnp.float32)
    labels = jnp.zeros((1,), jnp.int32) if generator.num_classes else None

    def transformed(variables):
        return inference.apply(variables, z, labels, train=False, mutable=[TRANSFORMED])[1]

    return inference, {**variables, **jax.jit(transformed)(variables)}


def ema_decay_at(step, ema_decay):
    """EMA decay warmed up as (1 + step) / (10 + step): early averages do not cling to the init."""
    step = step.astype(jnp.float32)
    return jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))


@dataclasses.dataclass(frozen=True)
class GANFamily:
    """A GAN: ``generator(z, labels, train)`` in [-1, 1], ``discriminator(x, labels, train)`` logits.

    ``latent_dim``, ``num_classes`` and the image shape are the generator's own fields; the
    discriminator must be conditioned on the same classes. ``ema_decay`` is the decay of the
    weights samples come from (warmed up by ``ema_decay_at``).
    """

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    ema_decay: float = 0.999
    axis_name: str | None = None

    data_range: ClassVar[str] = "tanh"

    def __post_init__(self):
        if self.generator.num_classes != self.discriminator.num_classes:
            raise InputError(f"the generator has num_classes={self.generator.num_classes} but the "
                             f"discriminator {self.discriminator.num_classes}: build both for the same classes")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.generator.image_shape)

    @property
    def decode(self) -> GeneratorDecode:
        return GeneratorDecode(self.generator)

    @property
    def device_rows(self) -> int | None:
        # Convolutional generators decode a device's rows a few at a time (cache-sized temporaries).
        return CONV_DEVICE_ROWS if isinstance(self.generator, DCGANGenerator) else None

    def _example_labels(self):
        return jnp.zeros((1,), jnp.int32) if self.num_classes else None

    def _generator_shapes(self):
        z = jnp.zeros((1, self.latent_dim))
        return jax.eval_shape(lambda: self.generator.init(jax.random.key(0), z, self._example_labels(),
                                                           train=False))

    def init(self, key) -> GANState:
        kg, kd = jax.random.split(key)
        labels = self._example_labels()
        g_vars = self.generator.init(kg, jnp.zeros((1, self.latent_dim)), labels, train=False)
        d_vars = self.discriminator.init(kd, jnp.zeros((1,) + self.image_shape), labels, train=False)
        g_params, d_params = g_vars["params"], d_vars["params"]
        return GANState(step=jnp.zeros((), jnp.int32), g_params=g_params,
                        g_batch_stats=g_vars.get("batch_stats", {}), g_opt_state=self.g_optimizer.init(g_params),
                        d_params=d_params, d_opt_state=self.d_optimizer.init(d_params),
                        ema_params=jax.tree.map(jnp.copy, g_params))

    def update(self, state: GANState, batch, key):
        """Simultaneous updates, non-saturating loss.

        One generator forward and one discriminator forward on the real and on the fake batch, as
        in the TensorFlow DCGAN tutorial's ``train_step``: D descends BCE(D(x), 1) + BCE(D(G(z)), 0),
        G descends BCE(D(G(z)), 1) through the same D(G(z)).
        """
        axis_name, generator, discriminator = self.axis_name, self.generator, self.discriminator
        real = batch["image"]
        labels = batch["label"] if self.num_classes else None
        key_z, key_dropout = jax.random.split(key)
        z = normal_rows(key_z, (real.shape[0], self.latent_dim), axis_name)
        key_dropout = device_key(key_dropout, axis_name)

        def generate(g_params):
            variables = {"params": g_params, "batch_stats": state.g_batch_stats}
            return generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])

        fake, g_vjp, g_mutated = jax.vjp(generate, vary(state.g_params, axis_name), has_aux=True)

        def discriminate(d_params, images, labels, key):
            return discriminator.apply({"params": d_params}, images, labels, train=True, rngs={"dropout": key})

        # Real and fake go through D separately: the generator's gradient needs D's input gradient
        # on the fake half only, and a backward pass over [real; fake] with zero cotangents on the
        # real half would do that work twice (measured in the README's Benchmarks).
        d_params = vary(state.d_params, axis_name)
        key_real, key_fake = jax.random.split(key_dropout)
        real_logits, d_vjp_real = jax.vjp(lambda p: discriminate(p, real, labels, key_real), d_params)
        fake_logits, d_vjp_fake = jax.vjp(lambda p, f: discriminate(p, f.astype(real.dtype), labels, key_fake),
                                          d_params, fake)
        d_loss, (d_real_ct, d_fake_ct) = jax.value_and_grad(losses.discriminator_loss, (0, 1))(
            real_logits, fake_logits)
        g_loss, g_fake_ct = jax.value_and_grad(losses.generator_loss_nonsaturating)(fake_logits)
        (d_grads_real,) = d_vjp_real(d_real_ct)
        d_grads_fake, _ = d_vjp_fake(d_fake_ct)
        d_grads = jax.tree.map(jnp.add, d_grads_real, d_grads_fake)
        _, fake_ct = d_vjp_fake(g_fake_ct)
        (g_grads,) = g_vjp(fake_ct)
        d_grads, g_grads = mean_over((d_grads, g_grads), axis_name)

        g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)
        d_updates, d_opt_state = self.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
        d_params = optax.apply_updates(state.d_params, d_updates)
        decay = ema_decay_at(state.step, self.ema_decay)
        ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)
        new_state = GANState(step=state.step + 1, g_params=g_params,
                             g_batch_stats=g_mutated.get("batch_stats", state.g_batch_stats),
                             g_opt_state=g_opt_state, d_params=d_params, d_opt_state=d_opt_state,
                             ema_params=ema_params)
        metrics = {"d_loss": d_loss, "g_loss": g_loss,
                   "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
        return new_state, mean_over(metrics, axis_name)

    def sample_variables(self, state: GANState, use_ema: bool = True) -> dict:
        """The generator's EMA weights (raw with ``use_ema=False``) and running BatchNorm statistics."""
        params = state.ema_params if use_ema else state.g_params
        return {"params": params, "batch_stats": state.g_batch_stats}

    def sampling_shapes(self, use_ema: bool = True) -> GANState:
        shapes = self._generator_shapes()
        params, stats = shapes["params"], shapes.get("batch_stats", {})
        return GANState(step=None, g_params=None if use_ema else params, g_batch_stats=stats,
                        g_opt_state=None, d_params=None, d_opt_state=None,
                        ema_params=params if use_ema else None)

    def for_sampling(self, variables: dict):
        if not isinstance(self.generator, DCGANGenerator):  # no Winograd layers: nothing to precompute
            return self.decode, variables
        inference, variables = with_transformed_kernels(self.generator, variables)
        return GeneratorDecode(inference), variables

    def parameter_counts(self, state: GANState) -> dict[str, int]:
        return {"g_params": count_parameters(state.g_params), "d_params": count_parameters(state.d_params)}
