"""DP-SGD as a wrapper around a model family's gradients: ``PrivateFamily(family, ...)``.

The wrapped family says which parameters see real data and what one real example's loss is
(``PrivateGradients`` below); the wrapper does the rest, the same for every family:

  1. ``family.public_inputs``: whatever the step draws without looking at the real data (the
     VAE's latent noise, the GAN's fake batch), one row per padded batch row.
  2. Per-example gradients of ``family.example_loss`` w.r.t. ``family.private_params`` (vmap, by
     ``jax_privacy.clipping.clipped_grad``), each clipped to global L2 norm ``clip_norm``,
     padding rows zeroed (the batch's ``mask``), summed over the global batch.
  3. Gaussian noise of std ``noise_multiplier * clip_norm`` added once to that sum: the key is
     the step's, the same on every device, and under ``jit`` over a mesh the sum is one global
     value (XLA's all-reduce), so the noise is drawn once, not per device. Under ``shard_map``
     (``axis_name``) the per-device sums are ``psum``-ed first and the same noise is added on
     every device, which is again one draw.
  4. The noisy sum divided by the *expected* batch size (q * n; dividing by the drawn size
     would make the scale depend on private data).
  5. ``family.apply_private_gradients``: the optimiser step with those gradients, plus every
     update that is post-processing (the GAN's fake-data term of D and the whole generator step).

The sensitivity of step 3's sum to adding or removing one example is ``clip_norm``, so each step
is the Poisson-subsampled Gaussian mechanism ``jsynth.privacy.accounting`` accounts for.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jsynth.errors import UserError

PyTree = Any


class PrivacyError(UserError, ValueError):
    """A model or setting that DP training cannot run with; the message says what to change."""


class PrivateGradients(Protocol):
    """What a family implements to be trained with differential privacy (no branch on its name)."""

    def private_params(self, state) -> PyTree:
        """The parameters whose gradients touch real examples (all the VAE's; the GAN's discriminator)."""

    def private_statistics(self, state) -> PyTree:
        """Statistics kept by the private networks besides parameters (BatchNorm's); must be empty:
        they would be updated from the batch without clipping or noise."""

    def public_inputs(self, state, key, rows: int) -> PyTree:
        """Per-row inputs drawn without the real data, leading axis ``rows`` (the padded batch)."""

    def example_loss(self, state, params, example: dict, public: PyTree, key):
        """``(loss, metrics)`` of one real example (a batch of 1) w.r.t. ``params`` (the private ones)."""

    def apply_private_gradients(self, state, grads, public_key, rows: int) -> tuple[PyTree, dict]:
        """The new state from the privatised gradients (plus post-processing updates) and metrics;
        ``public_key``/``rows``: ``public_inputs``'s, to draw the same public inputs again."""


@dataclasses.dataclass(frozen=True)
class PrivateFamily:
    """A model family trained by DP-SGD; everything but ``update`` is the wrapped family's.

    ``update``'s batch holds ``mask`` (rows,) float32 beside ``image``/``label``: 1 for a real
    example, 0 for padding (``jsynth.privacy.poisson``).
    """

    family: Any                   # a ModelFamily that is also PrivateGradients
    clip_norm: float
    noise_multiplier: float
    expected_batch_size: float    # q * n: the divisor of the noisy sum
    microbatch_size: int | None = None  # rows vmapped at once (None: all; smaller: less memory)

    def __post_init__(self):
        missing = [name for name in ("private_params", "private_statistics", "public_inputs", "example_loss",
                                     "apply_private_gradients") if not hasattr(self.family, name)]
        if missing:
            raise PrivacyError(f"{type(self.family).__name__} cannot be trained with differential privacy "
                               f"(it lacks {', '.join(missing)}); train it without the dp_* settings")
        if not self.clip_norm > 0 or not self.noise_multiplier >= 0 or not self.expected_batch_size > 0:
            raise PrivacyError(f"need clip_norm > 0, noise_multiplier >= 0 and an expected batch size > 0, got "
                               f"{self.clip_norm}, {self.noise_multiplier}, {self.expected_batch_size}")
        statistics = self.family.private_statistics(jax.eval_shape(self.family.init, jax.random.key(0)))
        if jax.tree.leaves(statistics):
            raise PrivacyError(
                "the networks that see real data keep batch statistics (BatchNorm, or spectral norm's "
                "vectors), which would be updated from each batch without clipping or noise: DP training "
                "needs them without (the DCGAN and MLP discriminators and the VAEs have no BatchNorm; set "
                "spectral_norm=false)")

    # ---- the wrapped family's interface, unchanged --------------------------------------------
    data_range = property(lambda self: self.family.data_range)
    axis_name = property(lambda self: self.family.axis_name)
    latent_dim = property(lambda self: self.family.latent_dim)
    num_classes = property(lambda self: self.family.num_classes)
    image_shape = property(lambda self: self.family.image_shape)
    decode = property(lambda self: self.family.decode)
    device_rows = property(lambda self: self.family.device_rows)

    @property
    def posterior(self):
        return self.family.posterior  # AttributeError for families without one, as for the family itself

    def init(self, key):
        return self.family.init(key)

    def sample_variables(self, state, use_ema: bool = True):
        return self.family.sample_variables(state, use_ema)

    def sampling_shapes(self, use_ema: bool = True):
        return self.family.sampling_shapes(use_ema)

    def for_sampling(self, variables):
        return self.family.for_sampling(variables)

    def parameter_counts(self, state):
        return self.family.parameter_counts(state)

    # ---- the private step -----------------------------------------------------------------------
    def update(self, state, batch: dict, key):
        """One DP-SGD step (module doc); metrics add ``clipped``, the share of examples clipped."""
        family, axis_name = self.family, self.axis_name
        mask = batch["mask"]
        examples = {k: v for k, v in batch.items() if k != "mask"}
        rows = mask.shape[0]
        key_public, key_examples, key_noise = (jax.random.fold_in(key, 100 + i) for i in range(3))
        public = family.public_inputs(state, key_public, rows)

        def loss(params, example, public_row, example_key):
            return family.example_loss(state, params, example, public_row, example_key)

        from jax_privacy import clipping  # here, not at the top: importing jax_privacy takes ~5 s

        clipped_sum = clipping.clipped_grad(
            loss, has_aux=True, l2_clip_norm=self.clip_norm, batch_argnums=(1, 2), prng_argnum=3,
            keep_batch_dim=True, return_values=True, return_grad_norms=True,
            microbatch_size=self.microbatch_size if self.microbatch_size and rows % self.microbatch_size == 0 else None)
        params = family.private_params(state)
        if axis_name is not None:  # a per-device key would give every device other example keys
            key_examples = jax.random.fold_in(key_examples, jax.lax.axis_index(axis_name))
        summed, aux = clipped_sum(params, examples, public, key_examples, is_padding_example=mask == 0)
        real = jnp.sum(mask)
        per_example = {"loss": aux.values, **aux.aux, "clipped": (aux.grad_norms > self.clip_norm).astype(jnp.float32)}
        metric_sums = {k: jnp.sum(v.reshape(rows) * mask) for k, v in per_example.items()}
        if axis_name is not None:
            summed, metric_sums, real = jax.lax.psum((summed, metric_sums, real), axis_name)
        grads = jax.tree.map(lambda g, z: (g + self.noise_multiplier * self.clip_norm * z) / self.expected_batch_size,
                             summed, _normal_like(key_noise, summed))
        state, metrics = family.apply_private_gradients(state, grads, key_public, rows)
        # Diagnostics over the batch's real examples (not privatised: see the README).
        metrics.update({k: v / jnp.maximum(real, 1.0) for k, v in metric_sums.items()})
        return state, metrics


def _normal_like(key, tree):
    """Standard normal noise shaped like ``tree``, one key per leaf (same key -> same noise everywhere)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
