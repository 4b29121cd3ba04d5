"""Decode functions for the sampling core, and the variables to pass them, per model family.

A decode function is ``decode(variables, z, labels) -> images in [0, 1]`` with BatchNorm in
inference mode (running statistics), which is all ``jsynth.sampling`` needs of a model.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jsynth.models import VAE, decoder_mean
from jsynth.models.subpixel import TRANSFORMED
from jsynth.state import GANState, VAEState


def gan_decoder(generator):
    """Generator output in [-1, 1] (tanh) mapped to [0, 1]."""
    def decode(variables, z, labels):
        return (generator.apply(variables, z, labels, train=False) + 1.0) * 0.5
    return decode


def vae_decoder(vae: VAE):
    """The decoder's mean image (Bernoulli and Gaussian likelihoods alike)."""
    def decode(variables, z, labels):
        return decoder_mean(vae.apply(variables, z, labels, method=VAE.decode))
    return decode


def gan_variables(state: GANState, use_ema: bool = True):
    """The generator's variables: the EMA weights by default, with its running BatchNorm stats."""
    params = state.ema_params if use_ema else state.g_params
    return {"params": params, "batch_stats": state.g_batch_stats}


def vae_variables(state: VAEState):
    return {"params": state.params}


def with_transformed_kernels(generator, variables, *, latent_dim: int, num_classes: int = 0):
    """``variables`` plus the generator's Winograd-transformed kernels (collection ``TRANSFORMED``).

    Sampling runs the generator over millions of rows with fixed weights; computed here once,
    the transformed kernels are not recomputed in every chunk (on dcgan64's 4x4 layer they
    outweigh a chunk of 128 rows). Only for fixed weights: after a training step, call again.
    """
    z = jnp.zeros((1, latent_dim), jnp.float32)
    labels = jnp.zeros((1,), jnp.int32) if num_classes else None

    def transformed(variables):
        return generator.apply(variables, z, labels, train=False, mutable=[TRANSFORMED])[1]

    return {**variables, **jax.jit(transformed)(variables)}
