"""The TVAE family (``--model tvae``): a VAE over encoded table rows (Xu et al. 2019).

Trained on the TVAE loss (``jsynth.tabular_losses.tvae_loss``: per-segment cross-entropy, a
Gaussian likelihood with one learned sigma per continuous column, and the KL term). With a target
column it is a conditional VAE (the label's one-hot at the encoder's and decoder's inputs).

Sampling (``TVAEDecode``) draws z ~ N(0, I), decodes, and draws each row from the decoder's
likelihood: continuous values tanh(mu) + sigma * noise (clipped to [-1, 1]), categories by
Gumbel-max from the softmax. The label is the asked condition or, unconditioned, drawn from the
target's frequencies in the data. All noise comes from the row's latent (``table_shape``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jsynth.errors import InputError
from jsynth.families.interface import count_parameters
from jsynth.families.table_shape import UNCONDITIONED, TableShape, draw_category, finish_rows
from jsynth.models.tabular import TVAE
from jsynth.tabular_losses import tvae_loss, tvae_sigmas
from jsynth.train.steps import mean_over, normal_rows, vary

PyTree = Any


@flax.struct.dataclass
class TVAEState:
    step: jnp.ndarray
    params: PyTree
    opt_state: PyTree


@dataclasses.dataclass(frozen=True)
class TVAEDecode:
    """``decode(variables, z) -> encoded rows (B, D)``; hashable (a jit cache key).

    ``condition``: a class index of the target for every row, or UNCONDITIONED (drawn per row).
    """

    vae: TVAE
    shape: TableShape
    condition: int = UNCONDITIONED

    @property
    def latent_dim(self) -> int:
        return self.vae.latent_dim + self.shape.output_dim + (1 if self.vae.num_classes else 0)

    @property
    def num_classes(self) -> int:
        return 0  # the decoder draws its own labels (sampling passes none)

    def with_condition(self, span_index: int, category: int) -> "TVAEDecode":
        """The decoder that samples only ``category`` of discrete column ``span_index``."""
        if not self.vae.num_classes or span_index != self.shape.target_span:
            target = (self.shape.span_columns[self.shape.target_span] if self.shape.target_span >= 0
                      else None)
            column = self.shape.span_columns[span_index]
            raise InputError(f"a TVAE samples a condition only on its target column"
                             f"{f' ({target})' if target else ' (trained without --set target=COLUMN)'}, "
                             f"not on {column}; train a ctgan model to condition on any discrete column")
        return dataclasses.replace(self, condition=int(category))

    def __call__(self, variables, z, labels=None):
        del labels
        latent, width = self.vae.latent_dim, self.shape.output_dim
        noise = z[:, latent:latent + width]
        label = None
        if self.vae.num_classes:
            if self.condition == UNCONDITIONED:
                label = draw_category(z[:, latent + width],
                                      self.shape.span_frequencies[self.shape.target_span])
            else:
                label = jnp.full((z.shape[0],), self.condition, jnp.int32)
        raw = self.vae.apply(variables, z[:, :latent], label, method=TVAE.decode)
        # The target's own segment is the label the row was decoded for.
        fixed = None if label is None else (self.shape.spans[self.shape.target_span][0], label)
        return finish_rows(raw, self.shape.layout, noise, tvae_sigmas(variables["params"]["log_sigma"]), fixed)


@dataclasses.dataclass(frozen=True)
class TVAEFamily:
    """The TVAE; the TableShape and ``num_classes`` (the target's categories) are the module's own."""

    vae: TVAE
    shape: TableShape
    optimizer: optax.GradientTransformation
    reconstruction_weight: float = 2.0  # the reference tool's weight of the reconstruction term
    kl_weight: float = 1.0              # of the KL term (``--set beta``)
    axis_name: str | None = None

    data_range: ClassVar[str] = "table"      # batches hold encoded rows (``batch["rows"]``)
    device_rows: ClassVar[int | None] = None
    training_by_sampling: ClassVar[bool] = False  # batches are uniform over the rows (with labels)

    def __post_init__(self):
        if self.vae.num_classes and self.shape.target_span < 0:
            raise InputError("a conditional TVAE needs a categorical target column")

    @property
    def latent_dim(self) -> int:
        return self.decode.latent_dim

    @property
    def num_classes(self) -> int:
        return self.vae.num_classes

    @property
    def decode(self) -> TVAEDecode:
        return TVAEDecode(self.vae, self.shape)

    def _init_variables(self, key):
        rows = jnp.zeros((1, self.shape.output_dim))
        labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
        return self.vae.init(key, rows, labels, jnp.zeros((1, self.vae.latent_dim)))

    def init(self, key) -> TVAEState:
        params = self._init_variables(key)["params"]
        return TVAEState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.optimizer.init(params))

    def update(self, state: TVAEState, batch, key):
        x = batch["rows"]
        labels = batch["label"] if self.num_classes else None
        noise = normal_rows(key, (x.shape[0], self.vae.latent_dim), self.axis_name)

        def loss_fn(params):
            raw, mean, log_var = self.vae.apply({"params": params}, x, labels, noise)
            return tvae_loss(raw, x, mean, log_var, params["log_sigma"], self.shape.layout,
                             self.reconstruction_weight, self.kl_weight)

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(vary(state.params, self.axis_name))
        grads = mean_over(grads, self.axis_name)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        new_state = TVAEState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                              opt_state=opt_state)
        return new_state, mean_over({"loss": loss, **terms}, self.axis_name)

    def sample_variables(self, state: TVAEState, use_ema: bool = True) -> dict:
        del use_ema  # a VAE keeps no EMA
        return {"params": state.params}

    def sampling_shapes(self, use_ema: bool = True) -> TVAEState:
        del use_ema
        params = jax.eval_shape(self._init_variables, jax.random.key(0))["params"]
        return TVAEState(step=None, params=params, opt_state=None)

    def for_sampling(self, variables: dict):
        return self.decode, variables

    def parameter_counts(self, state: TVAEState) -> dict[str, int]:
        return {"params": count_parameters(state.params)}
