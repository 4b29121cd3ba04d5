"""The reference architectures as jsynth builds them: the shipped modules and decode functions.

Benchmarks import the code that ``jsynth sample`` and ``jsynth train`` run (never
a copy), configured as ``docs/architectures.md`` defines: ``dcgan28`` is
``DCGANGenerator((28, 28, 1), width=64)``, ``dcgan64`` is ``DCGANGenerator((64, 64, 3), width=64)``
and ``mlpvae`` is the decoder of ``make_mlp_vae((28, 28, 1))`` (hidden 400, latent 20) + sigmoid.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jsynth.families import GeneratorDecode, VAEDecode, with_transformed_kernels
from jsynth.models import DCGANGenerator, make_mlp_vae
from jsynth.sampling import CONV_DEVICE_ROWS

SAMPLING_ARCHS = ("dcgan28", "dcgan64", "mlpvae")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class Sampler(NamedTuple):
    decode: Callable       # (variables, z, labels) -> images in [0, 1], float32
    variables: object      # initialised weights (BatchNorm statistics at their initial values)
    latent_dim: int
    image_shape: tuple
    device_rows: int | None  # rows per device and decode step (what ``jsynth sample`` uses for it)


def sampler(arch: str, dtype: str = "float32", upsample: str = "subpixel", seed: int = 0) -> Sampler:
    """The decode function and freshly initialised variables of ``arch`` in compute ``dtype``.

    Parameters stay float32 whatever ``dtype`` (flax's ``param_dtype``), so the float32 and
    bfloat16 samplers of one seed share their weights exactly. ``upsample`` only matters for
    the DCGANs (``jsynth.models.subpixel``).
    """
    if arch not in SAMPLING_ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(SAMPLING_ARCHS)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    key = jax.random.key(seed)
    if arch == "mlpvae":
        shape = (28, 28, 1)
        vae = make_mlp_vae(shape, dtype=DTYPES[dtype])
        variables = {"params": vae.init({"params": key, "noise": key}, jnp.zeros((1,) + shape))["params"]}
        decode, latent_dim, device_rows = VAEDecode(vae), 20, None
    else:
        shape = (28, 28, 1) if arch == "dcgan28" else (64, 64, 3)
        generator = DCGANGenerator(shape, 64, dtype=DTYPES[dtype], upsample=upsample)
        variables = generator.init(key, jnp.zeros((1, 100)), train=False)
        # What ``jsynth sample`` does too: the Winograd kernels are transformed once, not per chunk.
        generator, variables = with_transformed_kernels(generator, variables)
        decode, latent_dim, device_rows = GeneratorDecode(generator), 100, CONV_DEVICE_ROWS

    def decode_float32(variables, z, labels):  # samples are float32 (the README's Files contract)
        return decode(variables, z, labels).astype(jnp.float32)

    return Sampler(decode_float32, variables, latent_dim, shape, device_rows)
