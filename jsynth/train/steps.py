"""Writing a training step once for every device layout, and jitting it over a mesh.

A family's ``update`` (``jsynth.families``) with ``axis_name=None`` is written for the global
batch, and ``make_step`` jits it over a mesh (batch sharded, state replicated; XLA inserts the
all-reduces, and BatchNorm statistics are over the global batch). With an ``axis_name`` the same
function runs under ``jax.shard_map`` or ``jax.pmap`` on each device's slice: gradients, metrics
and (for modules built with the same ``axis_name``) BatchNorm statistics are averaged over that
axis, and each device uses its own rows of the global batch's noise, so the result equals the
jitted global-batch step's (dropout masks, when dropout > 0, are drawn per device). The helpers
below are what makes one function right in both layouts.

Why the gradients are taken w.r.t. explicitly per-device ("varying") parameters: under
``shard_map`` replicated parameters are invariant, and JAX then sums their gradients across
devices by itself, so the pmap habit of ``grad`` then ``pmean`` would give N times the gradient.
Casting the parameters to varying first (``vary``) makes ``grad`` local everywhere (shard_map
with or without ``check_vma``, and pmap), and the explicit ``pmean`` is then right in all three.

``batch`` is a dict: ``image`` (B, H, W, C) in the family's ``data_range`` and, for conditional
models, ``label`` (B,) int32.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

from jsynth.parallel import DATA_AXIS, batch_sharding, replicated


def vary(tree, axis_name):
    """Casts replicated arrays to per-device ones so that ``grad`` stays local (see module doc)."""
    if axis_name is None:
        return tree

    def cast(x):
        if axis_name in getattr(jax.typeof(x), "vma", frozenset()):
            return x
        return jax.lax.pcast(x, axis_name, to="varying")

    return jax.tree.map(cast, tree)


def mean_over(tree, axis_name):
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def device_key(key, axis_name):
    """A key of this device's own (dropout masks); the global batch's key without an axis."""
    return key if axis_name is None else jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def normal_rows(key, shape, axis_name):
    """Standard normal noise for this device's rows of the batch.

    Without an axis, traced under a mesh (``jit_over_mesh``), the rows are split over its data
    axis like the batch's: nothing else ties the generator's input to the data axis, and XLA then
    ran the whole generator on every device (2 devices were no faster than one; README,
    Benchmarks). JAX's Threefry is partitionable, so the numbers are the same either way.

    With an axis, each device draws the noise of the whole global batch and keeps its own rows,
    so the per-device step sees exactly the noise of the jitted global-batch step (the latents
    are tiny next to the networks, so drawing them N times costs nothing that matters).
    """
    return _rows(jax.random.normal, key, shape, axis_name)


def uniform_rows(key, shape, axis_name):
    """Uniform [0, 1) noise for this device's rows of the batch, drawn as ``normal_rows`` draws."""
    return _rows(jax.random.uniform, key, shape, axis_name)


def _rows(draw, key, shape, axis_name):
    if axis_name is None:
        noise = draw(key, shape)
        if DATA_AXIS not in jax.sharding.get_abstract_mesh().axis_names:
            return noise
        return jax.lax.with_sharding_constraint(noise, P(DATA_AXIS))
    rows, devices = shape[0], jax.lax.psum(1, axis_name)
    every_row = draw(key, (rows * devices,) + tuple(shape[1:]))
    return jax.lax.dynamic_slice_in_dim(every_row, jax.lax.axis_index(axis_name) * rows, rows)


def row_keys(key, rows: int, axis_name):
    """One key per row of the global batch, ``fold_in(key, row)``, for this device's ``rows``.

    Per-example randomness drawn from these (DiffAugment's transformations, WGAN-GP's
    interpolation weights) depends only on the row's place in the global batch, so the
    per-device step draws exactly what the jitted global-batch step draws, without drawing the
    whole batch's on every device.
    """
    first = 0 if axis_name is None else jax.lax.axis_index(axis_name) * rows
    return jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(rows))


# ---- jitted over a mesh ------------------------------------------------------------------

def jit_over_mesh(update, mesh: Mesh | None):
    """``jax.jit`` of a global-batch update: state replicated and donated, batch sharded.

    The update is traced under ``mesh`` so that the noise it draws is split like the batch.
    """
    if mesh is None:
        return jax.jit(update, donate_argnums=0)

    def update_under_mesh(state, batch, key):
        with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
            return update(state, batch, key)

    rep = replicated(mesh)
    return jax.jit(update_under_mesh, in_shardings=(rep, batch_sharding(mesh), rep),
                   out_shardings=(rep, rep), donate_argnums=0)


def make_step(family, mesh: Mesh | None):
    """The jitted training step of a model family (``jsynth.families``) over ``mesh``.

    ``family.update`` with ``axis_name=None``, batch sharded over the mesh's data axis, state
    replicated and donated. ``None``: jit's default placement.
    """
    if family.axis_name is not None:
        raise ValueError(f"make_step jits the global-batch update; this family has axis_name="
                         f"{family.axis_name!r} (for shard_map/pmap): build it with axis_name=None")
    return jit_over_mesh(family.update, mesh)
