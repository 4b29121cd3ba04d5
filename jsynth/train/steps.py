"""Step builders: one pure ``(state, batch, key) -> (state, metrics)`` function per model family.

``make_gan_update`` / ``make_vae_update`` return the per-device function. With ``axis_name=None``
it is written for the global batch, and ``make_gan_step`` / ``make_vae_step`` jit it over a mesh
(batch sharded, state replicated; XLA inserts the all-reduces, and BatchNorm statistics are over
the global batch). With an ``axis_name`` the same function runs under ``jax.shard_map`` or
``jax.pmap`` on each device's slice: gradients, metrics and (for modules built with the same
``axis_name``) BatchNorm statistics are averaged over that axis, and each device uses its own rows of
the global batch's noise, so the result equals the jitted global-batch step's (dropout masks, when
dropout > 0, are drawn per device).

Why the gradients are taken w.r.t. explicitly per-device ("varying") parameters: under
``shard_map`` replicated parameters are invariant, and JAX then sums their gradients across
devices by itself, so the pmap habit of ``grad`` then ``pmean`` would give N times the gradient.
Casting the parameters to varying first makes ``grad`` local everywhere (shard_map with or
without ``check_vma``, and pmap), and the explicit ``pmean`` is then right in all three.

``batch`` is a dict: ``image`` (B, H, W, C) in the model's range ([-1, 1] for GANs, [0, 1] for
VAEs) and, for conditional models, ``label`` (B,) int32.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from jsynth import losses
from jsynth.parallel import DATA_AXIS, batch_sharding, replicated
from jsynth.state import GANState, VAEState


def _local(tree, axis_name):
    """Casts replicated arrays to per-device ones so that ``grad`` stays local (see module doc)."""
    if axis_name is None:
        return tree

    def cast(x):
        if axis_name in getattr(jax.typeof(x), "vma", frozenset()):
            return x
        return jax.lax.pcast(x, axis_name, to="varying")

    return jax.tree.map(cast, tree)


def _mean(tree, axis_name):
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _device_key(key, axis_name):
    """A key of this device's own (dropout masks); the global batch's key without an axis."""
    return key if axis_name is None else jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def _normal_rows(key, shape, axis_name):
    """Standard normal noise for this device's rows of the batch.

    Without an axis, traced under a mesh (``jit_over_mesh``), the rows are split over its data
    axis like the batch's: nothing else ties the generator's input to the data axis, and XLA then
    ran the whole generator on every device (2 devices were no faster than one; README,
    Benchmarks). JAX's Threefry is partitionable, so the numbers are the same either way.

    With an axis, each device draws the noise of the whole global batch and keeps its own rows,
    so the per-device step sees exactly the noise of the jitted global-batch step (the latents
    are tiny next to the networks, so drawing them N times costs nothing that matters).
    """
    if axis_name is None:
        noise = jax.random.normal(key, shape)
        if DATA_AXIS not in jax.sharding.get_abstract_mesh().axis_names:
            return noise
        return jax.lax.with_sharding_constraint(noise, P(DATA_AXIS))
    rows, devices = shape[0], jax.lax.psum(1, axis_name)
    every_row = jax.random.normal(key, (rows * devices,) + tuple(shape[1:]))
    return jax.lax.dynamic_slice_in_dim(every_row, jax.lax.axis_index(axis_name) * rows, rows)


def _labels(batch, num_classes):
    return batch["label"] if num_classes else None


def ema_decay_at(step, ema_decay):
    """EMA decay warmed up as (1 + step) / (10 + step): early averages do not cling to the init."""
    step = step.astype(jnp.float32)
    return jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))


# ---- GAN ---------------------------------------------------------------------------------

def init_gan_state(generator, discriminator, g_tx, d_tx, key, *, image_shape, latent_dim,
                   num_classes) -> GANState:
    """A fresh GANState (pure; jit it with ``out_shardings`` to initialise in place)."""
    kg, kd = jax.random.split(key)
    labels = jnp.zeros((1,), jnp.int32) if num_classes else None
    g_vars = generator.init(kg, jnp.zeros((1, latent_dim)), labels, train=False)
    d_vars = discriminator.init(kd, jnp.zeros((1,) + tuple(image_shape)), labels, train=False)
    g_params, d_params = g_vars["params"], d_vars["params"]
    return GANState(step=jnp.zeros((), jnp.int32), g_params=g_params,
                    g_batch_stats=g_vars.get("batch_stats", {}), g_opt_state=g_tx.init(g_params),
                    d_params=d_params, d_opt_state=d_tx.init(d_params),
                    ema_params=jax.tree.map(jnp.copy, g_params))


def make_gan_update(generator, discriminator, g_tx, d_tx, *, latent_dim, num_classes,
                    ema_decay=0.999, axis_name=None):
    """The per-device GAN step (simultaneous updates, non-saturating loss).

    One generator forward and one discriminator forward on the real and on the fake batch, as in
    the TensorFlow DCGAN tutorial's ``train_step``: D descends BCE(D(x), 1) + BCE(D(G(z)), 0),
    G descends BCE(D(G(z)), 1) through the same D(G(z)).
    """

    def update(state: GANState, batch, key):
        real = batch["image"]
        labels = _labels(batch, num_classes)
        n = real.shape[0]
        key_z, key_dropout = jax.random.split(key)
        z = _normal_rows(key_z, (n, latent_dim), axis_name)
        key_dropout = _device_key(key_dropout, axis_name)

        def generate(g_params):
            variables = {"params": g_params, "batch_stats": state.g_batch_stats}
            return generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])

        fake, g_vjp, g_mutated = jax.vjp(generate, _local(state.g_params, axis_name), has_aux=True)

        def discriminate(d_params, images, labels, key):
            return discriminator.apply({"params": d_params}, images, labels, train=True, rngs={"dropout": key})

        # Real and fake go through D separately: the generator's gradient needs D's input gradient
        # on the fake half only, and a backward pass over [real; fake] with zero cotangents on the
        # real half would do that work twice (measured in the README's Benchmarks).
        d_params = _local(state.d_params, axis_name)
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
        d_grads, g_grads = _mean((d_grads, g_grads), axis_name)

        g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)
        d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)
        d_params = optax.apply_updates(state.d_params, d_updates)
        decay = ema_decay_at(state.step, ema_decay)
        ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params)
        new_state = GANState(step=state.step + 1, g_params=g_params,
                             g_batch_stats=g_mutated.get("batch_stats", state.g_batch_stats),
                             g_opt_state=g_opt_state, d_params=d_params, d_opt_state=d_opt_state,
                             ema_params=ema_params)
        metrics = {"d_loss": d_loss, "g_loss": g_loss,
                   "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
        return new_state, _mean(metrics, axis_name)

    return update


# ---- VAE ---------------------------------------------------------------------------------

def init_vae_state(vae, tx, key, *, image_shape, num_classes) -> VAEState:
    init_key, sample_key = jax.random.split(key)
    labels = jnp.zeros((1,), jnp.int32) if num_classes else None
    params = vae.init(init_key, jnp.zeros((1,) + tuple(image_shape)), labels, sample_key)["params"]
    return VAEState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def make_vae_update(vae, tx, *, num_classes, beta=1.0, likelihood="bernoulli", axis_name=None):
    """The per-device VAE step: descends the beta-weighted negative ELBO."""

    latent_dim = vae.latent_dim

    def update(state: VAEState, batch, key):
        x = batch["image"]
        labels = _labels(batch, num_classes)
        noise = _normal_rows(key, (x.shape[0], latent_dim), axis_name)

        def loss_fn(params):
            logits, mean, log_var = vae.apply({"params": params}, x, labels, noise=noise)
            return losses.negative_elbo(logits, x, mean, log_var, beta=beta, likelihood=likelihood,
                                        log_sigma=params["log_sigma"])

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(_local(state.params, axis_name))
        grads = _mean(grads, axis_name)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = VAEState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                             opt_state=opt_state)
        return new_state, _mean({"loss": loss, **terms}, axis_name)

    return update


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


def make_gan_step(generator, discriminator, g_tx, d_tx, *, mesh: Mesh | None, latent_dim,
                  num_classes, ema_decay=0.999):
    """The jitted GAN step over ``mesh`` (``None``: jit's default placement)."""
    return jit_over_mesh(make_gan_update(generator, discriminator, g_tx, d_tx, latent_dim=latent_dim,
                                         num_classes=num_classes, ema_decay=ema_decay), mesh)


def make_vae_step(vae, tx, *, mesh: Mesh | None, num_classes, beta=1.0, likelihood="bernoulli"):
    """The jitted VAE step over ``mesh``."""
    return jit_over_mesh(make_vae_update(vae, tx, num_classes=num_classes, beta=beta,
                                         likelihood=likelihood), mesh)
