"""The GAN family: a generator and a discriminator, sampled from an EMA of the generator's weights.

Trained with the non-saturating loss by default; the hinge or Wasserstein losses, a gradient
penalty (WGAN-GP), R1, several discriminator updates per generator update, DiffAugment and a
spectrally normalised discriminator are options of ``GANFamily`` (``jsynth.builders`` sets them
from the config). With none of them the step is the hand-optimised one the benchmarks measure.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jsynth import losses
from jsynth.augment import Augmentation, diff_augment
from jsynth.data.model_range import from_model_range
from jsynth.errors import InputError
from jsynth.families.interface import count_parameters
from jsynth.models import DCGANGenerator
from jsynth.models.subpixel import TRANSFORMED
from jsynth.sampling import CONV_DEVICE_ROWS
from jsynth.train.steps import device_key, mean_over, normal_rows, row_keys, vary

PyTree = Any


@flax.struct.dataclass
class GANState:
    step: jnp.ndarray          # int32 scalar: steps taken
    g_params: PyTree
    g_batch_stats: PyTree      # BatchNorm running statistics ({} for nets without BatchNorm)
    g_opt_state: PyTree
    d_params: PyTree
    d_batch_stats: PyTree      # spectral norm's power-iteration vectors ({} without spectral norm)
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

    Training recipe (the defaults are the non-saturating GAN with simultaneous updates):
      d_loss, g_loss: ``(real_logits, fake_logits) -> scalar`` and ``fake_logits -> scalar``
        (``jsynth.losses``: non-saturating, hinge, Wasserstein).
      gp_weight: weight of WGAN-GP's ``losses.gradient_penalty`` in D's loss (0: none).
      r1_gamma, r1_every: ``losses.r1_penalty`` with this gamma (0: none), applied every
        ``r1_every`` steps with its gradient scaled by ``r1_every`` (lazy R1, StyleGAN2).
      n_critic: D updates per G update; every step updates D, steps with ``step % n_critic ==
        n_critic - 1`` also G (its parameters, optimiser, BatchNorm statistics and EMA).
      augment: DiffAugment's transformations (``jsynth.augment``), applied to what D sees of
        the real and the fake batch, with G's gradient through them; () = none.
    A discriminator with spectral normalisation keeps its power-iteration vectors in the state
    (``d_batch_stats``), updated every step.
    """

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    ema_decay: float = 0.999
    axis_name: str | None = None
    d_loss: Callable = losses.discriminator_loss
    g_loss: Callable = losses.generator_loss_nonsaturating
    gp_weight: float = 0.0
    r1_gamma: float = 0.0
    r1_every: int = 1
    n_critic: int = 1
    augment: tuple[Augmentation, ...] = ()

    data_range: ClassVar[str] = "tanh"

    def __post_init__(self):
        if self.generator.num_classes != self.discriminator.num_classes:
            raise InputError(f"the generator has num_classes={self.generator.num_classes} but the "
                             f"discriminator {self.discriminator.num_classes}: build both for the same classes")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("gp_weight", "r1_gamma"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("r1_every", "n_critic"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be a positive integer, got {getattr(self, name)}")

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
                        d_params=d_params, d_batch_stats=d_vars.get("batch_stats", {}),
                        d_opt_state=self.d_optimizer.init(d_params),
                        ema_params=jax.tree.map(jnp.copy, g_params))

    def update(self, state: GANState, batch, key):
        """Simultaneous updates (non-saturating loss by default).

        One generator forward and one discriminator forward on the real and on the fake batch, as
        in the TensorFlow DCGAN tutorial's ``train_step``: D descends BCE(D(x), 1) + BCE(D(G(z)), 0),
        G descends BCE(D(G(z)), 1) through the same D(G(z)). The recipe's options (class doc) add
        to this structure without changing it: with none of them the computation is the same.

        Keys: ``fold_in(key, 0)`` the latents, ``fold_in(key, 1)`` dropout (per device),
        ``fold_in(key, 2)``/``fold_in(key, 3)`` the real/fake augmentations, ``fold_in(key, 4)``
        WGAN-GP's interpolation weights (``split(key)`` is ``fold_in`` 0 and 1).
        """
        axis_name, generator = self.axis_name, self.generator
        real = batch["image"]
        labels = batch["label"] if self.num_classes else None
        key_z, key_dropout = jax.random.split(key)
        z = normal_rows(key_z, (real.shape[0], self.latent_dim), axis_name)
        key_dropout = device_key(key_dropout, axis_name)

        def generate(g_params):
            variables = {"params": g_params, "batch_stats": state.g_batch_stats}
            return generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])

        fake, g_vjp, g_mutated = jax.vjp(generate, vary(state.g_params, axis_name), has_aux=True)

        discriminate = functools.partial(self._discriminate, state.d_batch_stats)
        augment = lambda images, index: self._augment(images, key, index)

        # Real and fake go through D separately: the generator's gradient needs D's input gradient
        # on the fake half only, and a backward pass over [real; fake] with zero cotangents on the
        # real half would do that work twice (measured in the README's Benchmarks).
        d_params = vary(state.d_params, axis_name)
        key_real, key_fake = jax.random.split(key_dropout)
        real_seen = augment(real, 2)
        real_logits, d_vjp_real, d_stats = jax.vjp(lambda p: discriminate(p, real_seen, labels, key_real),
                                                   d_params, has_aux=True)
        fake_logits, d_vjp_fake, _ = jax.vjp(
            lambda p, f: discriminate(p, augment(f.astype(real.dtype), 3), labels, key_fake),
            d_params, fake, has_aux=True)
        d_loss, (d_real_ct, d_fake_ct) = jax.value_and_grad(self.d_loss, (0, 1))(
            real_logits, fake_logits)
        g_loss, g_fake_ct = jax.value_and_grad(self.g_loss)(fake_logits)
        (d_grads_real,) = d_vjp_real(d_real_ct)
        d_grads_fake, _ = d_vjp_fake(d_fake_ct)
        d_grads = jax.tree.map(jnp.add, d_grads_real, d_grads_fake)

        penalties = {}
        if self.gp_weight or self.r1_gamma:
            critic = lambda p: lambda x: discriminate(p, x, labels, jax.random.fold_in(key_dropout, 2))[0]
            fake_seen = lambda: jax.lax.stop_gradient(augment(fake.astype(real.dtype), 3))
            d_grads, penalties = self._add_penalties(state.step, d_params, d_grads, critic, real_seen, fake_seen,
                                                     jax.random.fold_in(key, 4))

        def g_backward():
            _, fake_ct = d_vjp_fake(g_fake_ct)
            (g_grads,) = g_vjp(fake_ct)
            return g_grads

        if self.n_critic == 1:
            d_grads, g_grads = mean_over((d_grads, g_backward()), axis_name)
            g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
            g_params = optax.apply_updates(state.g_params, g_updates)
            d_params, d_opt_state = self._d_update(state, d_grads)
            ema_params = self._ema(state, g_params, state.step)
            g_batch_stats = g_mutated.get("batch_stats", state.g_batch_stats)
        else:
            d_grads = mean_over(d_grads, axis_name)

            def g_turn():
                g_grads = mean_over(g_backward(), axis_name)
                g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
                g_params = optax.apply_updates(state.g_params, g_updates)
                return (g_params, g_opt_state, self._ema(state, g_params, state.step // self.n_critic),
                        g_mutated.get("batch_stats", state.g_batch_stats))

            def d_turn():
                return state.g_params, state.g_opt_state, state.ema_params, state.g_batch_stats

            # lax.cond: the generator's backward pass runs only on its own steps.
            g_params, g_opt_state, ema_params, g_batch_stats = jax.lax.cond(
                state.step % self.n_critic == self.n_critic - 1, g_turn, d_turn)
            d_params, d_opt_state = self._d_update(state, d_grads)

        # The power iteration depends on the weights only, so every device computed the same vectors.
        d_batch_stats = mean_over(d_stats, axis_name) if d_stats else state.d_batch_stats
        new_state = GANState(step=state.step + 1, g_params=g_params, g_batch_stats=g_batch_stats,
                             g_opt_state=g_opt_state, d_params=d_params, d_batch_stats=d_batch_stats,
                             d_opt_state=d_opt_state, ema_params=ema_params)
        metrics = {"d_loss": d_loss, "g_loss": g_loss,
                   "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), **penalties}
        return new_state, mean_over(metrics, axis_name)

    # ---- differential privacy (jsynth.privacy.mechanism.PrivateGradients) ----------------------
    # Only D sees real images. D's loss is a sum of a real term and a fake term (every loss in
    # jsynth.losses is), so D's gradient splits into the real examples' gradients, which are
    # clipped per example and noised, and the fake batch's, which depends on nothing private
    # (D's and G's current weights are already-privatised outputs, the fakes' latents and labels
    # are drawn from the key) and is added as it is. G's whole step is likewise post-processing:
    # its fakes carry labels drawn uniformly, never the real batch's, and its loss averages all
    # rows, never the mask (the drawn batch size is private too).
    def _check_private_recipe(self):
        if self.gp_weight or self.r1_gamma or self.n_critic != 1 or self.augment:
            raise InputError("DP training supports the plain GAN recipe (non-saturating, hinge or Wasserstein "
                             "loss; no gradient penalty, R1, n_critic or DiffAugment): their terms are not "
                             "per-example sums of the real term")

    def private_params(self, state: GANState):
        """The discriminator's parameters: the only ones whose gradient reads real images."""
        return state.d_params

    def private_statistics(self, state: GANState):
        """The discriminator's batch statistics (spectral norm's vectors): must be empty under DP."""
        return state.d_batch_stats

    def _fakes(self, state: GANState, key, rows: int):
        """(fakes, their labels, G's vjp, G's mutated statistics): labels uniform, never the real ones."""
        self._check_private_recipe()
        z = normal_rows(jax.random.fold_in(key, 0), (rows, self.latent_dim), self.axis_name)
        labels = None
        if self.num_classes:
            labels = jax.random.randint(jax.random.fold_in(key, 5), (rows,), 0, self.num_classes)

        def generate(g_params):
            variables = {"params": g_params, "batch_stats": state.g_batch_stats}
            return self.generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])

        fake, g_vjp, g_mutated = jax.vjp(generate, vary(state.g_params, self.axis_name), has_aux=True)
        return fake, labels, g_vjp, g_mutated

    def public_inputs(self, state: GANState, key, rows: int) -> dict:
        """Each row's fake logit under the current D: the constant the row's D loss pairs with."""
        fake, labels, _, _ = self._fakes(state, key, rows)
        logits, _ = self._discriminate({}, state.d_params, fake.astype(jnp.float32), labels,
                                       device_key(jax.random.fold_in(key, 6), self.axis_name))
        return {"fake_logit": jax.lax.stop_gradient(logits)}

    def example_loss(self, state: GANState, params, example: dict, public: dict, key):
        """D's loss on one real example paired with its row's fake logit (a constant: no gradient)."""
        labels = example["label"] if self.num_classes else None
        real_logits, _ = self._discriminate({}, params, example["image"], labels, key)
        loss = self.d_loss(real_logits, public["fake_logit"])
        return loss, {"d_loss": loss, "d_real": jnp.mean(jax.nn.sigmoid(real_logits))}

    def apply_private_gradients(self, state: GANState, grads, public_key, rows: int):
        """D: the privatised real-data gradient plus the fake batch's; G: its usual step (public).

        ``public_key`` and ``rows`` are ``public_inputs``'s: the same fakes are drawn again (a
        pytree cannot carry G's vjp from there to here).
        """
        axis_name = self.axis_name
        fake, labels, g_vjp, g_mutated = self._fakes(state, public_key, rows)
        d_params = vary(state.d_params, axis_name)
        fake_logits, d_vjp_fake = jax.vjp(
            lambda p, f: self._discriminate({}, p, f.astype(jnp.float32), labels,
                                            device_key(jax.random.fold_in(public_key, 6), axis_name))[0],
            d_params, fake)
        # The fake term of D's loss, over all rows (real logits enter only as a constant).
        d_fake_ct = jax.grad(lambda f: self.d_loss(jax.lax.stop_gradient(jnp.zeros_like(f)), f))(fake_logits)
        g_loss, g_fake_ct = jax.value_and_grad(self.g_loss)(fake_logits)
        d_grads_fake, _ = d_vjp_fake(d_fake_ct)
        _, fake_ct = d_vjp_fake(g_fake_ct)
        (g_grads,) = g_vjp(fake_ct)
        d_grads_fake, g_grads = mean_over((d_grads_fake, g_grads), axis_name)
        d_grads = jax.tree.map(jnp.add, grads, d_grads_fake)
        g_updates, g_opt_state = self.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)
        d_params, d_opt_state = self._d_update(state, d_grads)
        new_state = GANState(step=state.step + 1, g_params=g_params,
                             g_batch_stats=g_mutated.get("batch_stats", state.g_batch_stats), g_opt_state=g_opt_state,
                             d_params=d_params, d_batch_stats=state.d_batch_stats, d_opt_state=d_opt_state,
                             ema_params=self._ema(state, g_params, state.step))
        return new_state, mean_over({"g_loss": g_loss, "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}, axis_name)

    def _discriminate(self, d_batch_stats, d_params, images, labels, key):
        """(logits, the updated spectral-norm vectors, or {} for a discriminator without them)."""
        if not d_batch_stats:
            return self.discriminator.apply({"params": d_params}, images, labels, train=True,
                                            rngs={"dropout": key}), {}
        logits, mutated = self.discriminator.apply({"params": d_params, "batch_stats": d_batch_stats},
                                                   images, labels, train=True, rngs={"dropout": key},
                                                   mutable=["batch_stats"])
        return logits, mutated["batch_stats"]

    def _augment(self, images, key, index: int):
        """DiffAugment of this device's rows, row i from ``fold_in(fold_in(key, index), i)``.

        Without augmentations the images come back untouched and no key is derived.
        """
        if not self.augment:
            return images
        keys = row_keys(jax.random.fold_in(key, index), images.shape[0], self.axis_name)
        return diff_augment(images, keys, self.augment)

    def _add_penalties(self, step, d_params, d_grads, critic, real_seen, fake_seen, key_eps):
        """D's gradients plus those of its penalties, and the penalties by name (metrics).

        ``critic(p)``: D as ``x -> logits`` with parameters p; ``real_seen``: the real images as D
        saw them (augmented); ``fake_seen()``: the fakes likewise, without gradient to G.
        """
        penalties = {}
        if self.gp_weight:
            # Interpolations between each real image and its fake (the same label), one weight per row.
            eps = jax.vmap(jax.random.uniform)(row_keys(key_eps, real_seen.shape[0], self.axis_name))
            fakes = fake_seen()
            gp, gp_grads = jax.value_and_grad(
                lambda p: losses.gradient_penalty(critic(p), real_seen, fakes, eps))(d_params)
            d_grads = jax.tree.map(lambda g, p: g + self.gp_weight * p, d_grads, gp_grads)
            penalties["gp"] = gp
        if self.r1_gamma:
            r1, r1_grads = self._lazy(step, self.r1_every, lambda: jax.value_and_grad(
                lambda p: losses.r1_penalty(critic(p), real_seen, self.r1_gamma))(d_params))
            d_grads = jax.tree.map(lambda g, p: g + self.r1_every * p, d_grads, r1_grads)
            penalties["r1"] = r1  # 0 on the steps lazy R1 skips
        return d_grads, penalties

    def _d_update(self, state: GANState, d_grads):
        d_updates, d_opt_state = self.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
        return optax.apply_updates(state.d_params, d_updates), d_opt_state

    def _ema(self, state: GANState, g_params, g_step):
        """The EMA of the generator after an update to ``g_params``; ``g_step`` warms the decay up."""
        decay = ema_decay_at(g_step, self.ema_decay)
        return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)

    def _lazy(self, step, every: int, penalty):
        """``penalty()`` = (value, gradients) on steps divisible by ``every``, zeros on the others.

        Under lax.cond the skipped steps do not compute it (R1's double backward pass is the
        dearest part of a step); the caller scales the gradients by ``every``. The zeros are cast
        to per-device values like the penalty's (both branches of a cond have one type).
        """
        if every == 1:
            return penalty()
        shapes = jax.eval_shape(penalty)
        zeros = lambda: vary(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), self.axis_name)
        return jax.lax.cond(step % every == 0, penalty, zeros)

    def sample_variables(self, state: GANState, use_ema: bool = True) -> dict:
        """The generator's EMA weights (raw with ``use_ema=False``) and running BatchNorm statistics."""
        params = state.ema_params if use_ema else state.g_params
        return {"params": params, "batch_stats": state.g_batch_stats}

    def sampling_shapes(self, use_ema: bool = True) -> GANState:
        shapes = self._generator_shapes()
        params, stats = shapes["params"], shapes.get("batch_stats", {})
        return GANState(step=None, g_params=None if use_ema else params, g_batch_stats=stats,
                        g_opt_state=None, d_params=None, d_batch_stats=None, d_opt_state=None,
                        ema_params=params if use_ema else None)

    def for_sampling(self, variables: dict):
        if not isinstance(self.generator, DCGANGenerator):  # no Winograd layers: nothing to precompute
            return self.decode, variables
        inference, variables = with_transformed_kernels(self.generator, variables)
        return GeneratorDecode(inference), variables

    def parameter_counts(self, state: GANState) -> dict[str, int]:
        return {"g_params": count_parameters(state.g_params), "d_params": count_parameters(state.d_params)}
