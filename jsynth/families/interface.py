"""The interface every model family implements: all that the loop, sampler, evaluator and benchmarks use.

A family is a frozen dataclass of modules and optimisers with no state of its own; the state it
initialises and updates is an explicit pytree (a ``flax.struct`` dataclass with a ``step``). Frozen
dataclasses are hashable, so a family's ``decode`` is a cache key (``jsynth.sampling.make_chunk_fn``
compiles once per model) and its bound ``update`` can be jitted like any function. A new family
(tabular, sequence, ...) is one new file with a class of this shape; nothing else branches on it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Protocol, runtime_checkable

import jax

PyTree = Any


class ModelFamily(Protocol):
    data_range: str
    """"tanh" (``batch["image"]`` in [-1, 1]) or "unit" ([0, 1]); see ``jsynth.data.to_model_range``."""

    axis_name: str | None
    """None: ``update`` is written for the global batch (``jsynth.make_step`` jits it over a mesh);
    a mesh axis name: the same update runs per device under ``shard_map``/``pmap``, averaging
    gradients, metrics and BatchNorm statistics over that axis."""

    @property
    def latent_dim(self) -> int:
        """The width of the latents ``decode`` takes (read from the modules)."""

    @property
    def num_classes(self) -> int:
        """Classes the model is conditioned on; 0: unconditional (labels are then optional)."""

    @property
    def decode(self) -> Callable:
        """``decode(variables, z, labels) -> samples in [0, 1]``, hashable (inference mode)."""

    @property
    def device_rows(self) -> int | None:
        """Rows per device and decode step when sampling (``jsynth.sampling.make_chunk_fn``)."""

    def init(self, key) -> PyTree:
        """A fresh state (pure: jit it with ``out_shardings`` to initialise in place)."""

    def update(self, state: PyTree, batch: dict, key) -> tuple[PyTree, dict]:
        """One training step: ``(state, batch, key) -> (state, metrics)``, pure."""

    def sample_variables(self, state: PyTree, use_ema: bool = True) -> dict:
        """The variables ``decode`` takes, read from a state (the EMA weights where a family keeps them)."""

    def sampling_shapes(self, use_ema: bool = True) -> PyTree:
        """An abstract state holding only the fields ``sample_variables`` reads (the others None):
        what ``jsynth.load_trained`` restores, without optimiser states or a discriminator."""

    def for_sampling(self, variables: dict) -> tuple[Callable, dict]:
        """``(decode, variables)`` to sample fixed weights with (e.g. kernels transformed once)."""

    def parameter_counts(self, state: PyTree) -> dict[str, int]:
        """Parameters per network, by state field (what ``jsynth train --dry-run`` prints)."""


@runtime_checkable
class HasPosterior(Protocol):
    """A family whose model also has an encoder q(z|x) and a likelihood p(x|z) (the VAEs): what
    ``jsynth.evaluate.nll`` (importance-sampled log p(x)) and ``jsynth.evaluate.latents`` (active
    units) need. ``jsynth eval`` checks for this capability, never for a family's name."""

    @property
    def posterior(self) -> Any:
        """Hashable, reading the variables ``sample_variables`` returns: ``likelihood`` ("bernoulli"
        or "gaussian"), ``latent_dim``, ``encode(variables, x, labels) -> (mean, log_var)`` and
        ``log_likelihood(variables, z, x, labels) -> (B,)``."""


def count_parameters(tree: PyTree) -> int:
    """Scalars in a pytree of arrays (or shapes): what ``parameter_counts`` reports per network."""
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))
