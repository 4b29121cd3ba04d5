"""How class labels enter a discriminator: "concat" (a one-hot code beside the input) or
"projection" (Miyato & Koyama 2018: logit = psi(phi(x)) + <embed(y), phi(x)>).

Projection lets D compare an image's features with its class's embedding instead of learning the
interaction from a concatenated code, which is what makes conditional GANs draw the asked class
reliably in the paper's experiments.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

D_CONDITIONINGS = ("concat", "projection")


def check_conditioning(conditioning: str) -> None:
    if conditioning not in D_CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {D_CONDITIONINGS}, got {conditioning!r}")


def projection(features, labels, num_classes: int, dtype: Any, wrap: Callable = lambda layer: layer):
    """<embed(labels), features> per example (B,): the projection term added to the logit.

    ``wrap`` wraps the embedding layer (spectral normalisation); the ``nn.Embed`` is constructed
    here, inside the calling module's compact ``__call__``, so it is named ``Embed_0`` there.
    """
    if labels is None:
        raise ValueError(f"this discriminator is class-conditional ({num_classes} classes): pass labels")
    embed = wrap(nn.Embed(num_classes, features.shape[-1], dtype=dtype))(labels)
    return jnp.sum(embed * features, axis=-1)
