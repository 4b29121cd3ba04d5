"""Decode functions for the sampling core, and the variables to pass them, per model family.

A decode function is ``decode(variables, z, labels) -> images in [0, 1]`` with BatchNorm in
inference mode (running statistics), which is all ``jsynth.sampling`` needs of a model.
"""
from __future__ import annotations

from jsynth.models import VAE, decoder_mean
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
