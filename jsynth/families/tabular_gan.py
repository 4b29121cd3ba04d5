"""The CTGAN family (``--model ctgan``): a conditional WGAN-GP over encoded table rows (Xu et al. 2019).

Each step updates the PacGAN critic once (Wasserstein loss + the pac-packed gradient penalty),
then the generator (-E[critic] + the cross-entropy between the generated discrete column a row was
conditioned on and the asked category). Conditions come with the batch, drawn on the host by
training-by-sampling (``jsynth.train.table_batches``): ``cond_d`` for the critic's step, paired
with real rows of those categories, and ``cond_g`` for the generator's. The generator's outputs
are tanh for continuous values and Gumbel-softmax (tau 0.2) for the categorical segments.

Samples come from an EMA of the generator's weights (``ema_decay``, warmed up as the image GAN's)
in inference mode; categories are drawn by Gumbel-max, the condition is the asked one or drawn
per row (a discrete column uniformly, then a category by its frequency in the data).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jsynth.errors import InputError
from jsynth.families.gan import ema_decay_at
from jsynth.families.interface import count_parameters
from jsynth.families.table_shape import (UNCONDITIONED, TableShape, draw_flat_condition, finish_rows,
                                         gumbel_from_normal)
from jsynth.models.tabular import CTGANDiscriminator, CTGANGenerator, apply_activations
from jsynth.tabular_losses import (conditional_cross_entropy, generator_critic_loss, packed_gradient_penalty,
                                   wasserstein_critic_loss)
from jsynth.train.steps import device_key, mean_over, normal_rows, uniform_rows, vary

PyTree = Any


@flax.struct.dataclass
class CTGANState:
    step: jnp.ndarray
    g_params: PyTree
    g_batch_stats: PyTree
    g_opt_state: PyTree
    d_params: PyTree
    d_opt_state: PyTree
    ema_params: PyTree


@dataclasses.dataclass(frozen=True)
class CTGANDecode:
    """``decode(variables, z) -> encoded rows (B, D)``; hashable. ``condition``: an index into the
    conditional vector for every row, or UNCONDITIONED (drawn per row)."""

    generator: CTGANGenerator
    shape: TableShape
    noise_dim: int
    condition: int = UNCONDITIONED

    @property
    def latent_dim(self) -> int:
        return self.noise_dim + self.shape.output_dim + (2 if self.shape.spans else 0)

    @property
    def num_classes(self) -> int:
        return 0  # the decoder draws its own conditions (sampling passes no labels)

    def with_condition(self, span_index: int, category: int) -> "CTGANDecode":
        return dataclasses.replace(self, condition=self.shape.flat_condition(span_index, category))

    def __call__(self, variables, z, labels=None):
        del labels
        width = self.shape.output_dim
        noise = z[:, self.noise_dim:self.noise_dim + width]
        cond, fixed = None, None
        if self.shape.spans:
            if self.condition == UNCONDITIONED:
                flat = draw_flat_condition(z[:, -2], z[:, -1], self.shape)
            else:
                flat = jnp.full((z.shape[0],), self.condition, jnp.int32)
                # An asked condition is exact: its column takes the asked category.
                span = max(i for i, offset in enumerate(self.shape.span_offsets) if offset <= self.condition)
                category = self.condition - self.shape.span_offsets[span]
                fixed = (self.shape.spans[span][0], jnp.full((z.shape[0],), category, jnp.int32))
            cond = jax.nn.one_hot(flat, self.shape.cond_dim, dtype=z.dtype)
        raw = self.generator.apply(variables, z[:, :self.noise_dim], cond, train=False)
        return finish_rows(raw, self.shape.layout, noise, fixed=fixed)


@dataclasses.dataclass(frozen=True)
class CTGANFamily:
    generator: CTGANGenerator
    discriminator: CTGANDiscriminator
    shape: TableShape
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    noise_dim: int = 128
    gp_weight: float = 10.0
    ema_decay: float = 0.999
    num_classes: int = 0   # the target's categories (the condition covers every discrete column anyway)
    axis_name: str | None = None

    data_range: ClassVar[str] = "table"
    device_rows: ClassVar[int | None] = None
    training_by_sampling: ClassVar[bool] = True  # batches carry conditions and rows matching them

    def __post_init__(self):
        if self.generator.output_dim != self.shape.output_dim:
            raise InputError(f"generator width {self.generator.output_dim} != encoded width {self.shape.output_dim}")

    @property
    def pac(self) -> int:
        return self.discriminator.pac

    @property
    def latent_dim(self) -> int:
        return self.decode.latent_dim

    @property
    def decode(self) -> CTGANDecode:
        return CTGANDecode(self.generator, self.shape, self.noise_dim)

    def _cond(self, flat):
        if not self.shape.spans:
            return None
        return jax.nn.one_hot(flat, self.shape.cond_dim, dtype=jnp.float32)

    def _init_generator(self, key):
        cond = jnp.zeros((2, self.shape.cond_dim)) if self.shape.spans else None
        return self.generator.init(key, jnp.zeros((2, self.noise_dim)), cond, train=False)

    def init(self, key) -> CTGANState:
        g_key, d_key = jax.random.split(key)
        g_vars = self._init_generator(g_key)
        cond = jnp.zeros((self.pac, self.shape.cond_dim)) if self.shape.spans else None
        d_params = self.discriminator.init(d_key, jnp.zeros((self.pac, self.shape.output_dim)), cond,
                                           train=False)["params"]
        g_params = g_vars["params"]
        return CTGANState(step=jnp.zeros((), jnp.int32), g_params=g_params,
                          g_batch_stats=g_vars.get("batch_stats", {}), g_opt_state=self.g_optimizer.init(g_params),
                          d_params=d_params, d_opt_state=self.d_optimizer.init(d_params),
                          ema_params=jax.tree.map(jnp.copy, g_params))

    def _generate(self, g_params, batch_stats, z, cond, gumbel):
        raw, updates = self.generator.apply({"params": g_params, "batch_stats": batch_stats}, z, cond,
                                            train=True, mutable=["batch_stats"])
        return raw, apply_activations(raw, self.shape.layout, gumbel), updates["batch_stats"]

    def update(self, state: CTGANState, batch, key):
        real = batch["rows"]
        rows = real.shape[0]
        keys = jax.random.split(key, 8)
        c_d = self._cond(batch["cond_d"]) if self.shape.spans else None
        c_g = self._cond(batch["cond_g"]) if self.shape.spans else None
        z_d = normal_rows(keys[0], (rows, self.noise_dim), self.axis_name)
        z_g = normal_rows(keys[1], (rows, self.noise_dim), self.axis_name)
        gumbel_d = gumbel_from_normal(normal_rows(keys[2], real.shape, self.axis_name))
        gumbel_g = gumbel_from_normal(normal_rows(keys[3], real.shape, self.axis_name))
        alpha = uniform_rows(keys[4], (rows // self.pac,), self.axis_name)
        dropout_d = device_key(keys[5], self.axis_name)
        dropout_gp, dropout_g = device_key(keys[6], self.axis_name), device_key(keys[7], self.axis_name)

        def with_cond(x, cond):
            return x if cond is None else jnp.concatenate([x, cond], axis=-1)

        # The critic's step.
        _, fake, batch_stats = self._generate(state.g_params, state.g_batch_stats, z_d, c_d, gumbel_d)
        fake = jax.lax.stop_gradient(fake)
        features = real.shape[-1]

        def d_loss_fn(d_params):
            def critic(x, rng):  # x: rows and conditions side by side
                return self.discriminator.apply({"params": d_params}, x[:, :features],
                                                x[:, features:] if c_d is not None else None,
                                                train=True, rngs={"dropout": rng})
            real_in, fake_in = with_cond(real, c_d), with_cond(fake, c_d)
            real_scores, fake_scores = critic(real_in, dropout_d), critic(fake_in, dropout_d)
            wasserstein = wasserstein_critic_loss(real_scores, fake_scores)
            penalty = packed_gradient_penalty(lambda x: critic(x, dropout_gp), real_in, fake_in, alpha, self.pac)
            return wasserstein + self.gp_weight * penalty, {"d_wasserstein": wasserstein, "gradient_penalty": penalty}

        (d_loss, d_terms), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(vary(state.d_params, self.axis_name))
        d_grads = mean_over(d_grads, self.axis_name)
        d_updates, d_opt_state = self.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
        d_params = optax.apply_updates(state.d_params, d_updates)

        # The generator's step, against the updated critic.
        def g_loss_fn(g_params):
            raw, fake, new_stats = self._generate(g_params, batch_stats, z_g, c_g, gumbel_g)
            scores = self.discriminator.apply({"params": d_params}, fake, c_g, train=True,
                                              rngs={"dropout": dropout_g})
            adversarial = generator_critic_loss(scores)
            cross_entropy = (conditional_cross_entropy(raw, batch["cond_g"], self.shape.spans)
                             if self.shape.spans else jnp.zeros(()))
            return adversarial + cross_entropy, (new_stats, {"g_adversarial": adversarial,
                                                             "g_cross_entropy": cross_entropy})

        (g_loss, (g_batch_stats, g_terms)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            vary(state.g_params, self.axis_name))
        g_grads = mean_over(g_grads, self.axis_name)
        g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)
        decay = ema_decay_at(state.step, self.ema_decay)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)
        new_state = CTGANState(step=state.step + 1, g_params=g_params, g_batch_stats=g_batch_stats,
                               g_opt_state=g_opt_state, d_params=d_params, d_opt_state=d_opt_state,
                               ema_params=ema)
        metrics = {"d_loss": d_loss, "g_loss": g_loss, **d_terms, **g_terms}
        return new_state, mean_over(metrics, self.axis_name)

    def sample_variables(self, state: CTGANState, use_ema: bool = True) -> dict:
        return {"params": state.ema_params if use_ema else state.g_params, "batch_stats": state.g_batch_stats}

    def sampling_shapes(self, use_ema: bool = True) -> CTGANState:
        shapes = jax.eval_shape(self._init_generator, jax.random.key(0))
        params, stats = shapes["params"], shapes.get("batch_stats", {})
        return CTGANState(step=None, g_params=None if use_ema else params, g_batch_stats=stats, g_opt_state=None,
                          d_params=None, d_opt_state=None, ema_params=params if use_ema else None)

    def for_sampling(self, variables: dict):
        return self.decode, variables

    def parameter_counts(self, state: CTGANState) -> dict[str, int]:
        return {"generator": count_parameters(state.g_params), "discriminator": count_parameters(state.d_params)}
