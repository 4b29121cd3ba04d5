"""Spectral normalisation of a discriminator's layers (Miyato et al. 2018), as one switch.

``flax.linen.SpectralNorm`` divides each weight matrix (a convolution's kernel flattened to
(-1, out)) by its largest singular value, estimated by one power iteration per call from a vector
kept in the ``batch_stats`` collection. That vector is state: training applies the module with
``mutable=["batch_stats"]`` and keeps what comes back (``jsynth.families.GANFamily`` holds it as
``GANState.d_batch_stats``). The iteration depends only on the weights and the vector, never on the
batch, so every device computes the same update.
"""
from __future__ import annotations

import functools

import flax.linen as nn


def spectrally_normalized(layer: nn.Module, enabled: bool, train: bool):
    """``layer``, or ``layer`` with spectrally normalised weights (updating the vector only in training).

    Construct ``layer`` in the calling module (as ``spectrally_normalized(nn.Dense(1), ...)(h)``):
    it then keeps the name and parameters it has without normalisation, so switching it on changes
    no parameter path, only adds the ``batch_stats`` vectors (named after the layer).
    """
    if not enabled:
        return layer
    return functools.partial(nn.SpectralNorm(layer), update_stats=train)
