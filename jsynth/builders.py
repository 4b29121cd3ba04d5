"""Factories from a ``TrainConfig`` to modules and Optax optimisers.

This is where config fields become constructor arguments, so that neither the modules nor the
jitted steps ever see a config.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax.numpy as jnp
import optax

from jsynth.configs import TrainConfig
from jsynth.decoders import gan_decoder, gan_variables, vae_decoder, vae_variables, with_transformed_kernels
from jsynth.models import (DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator,
                           check_image_shape, make_conv_vae, make_mlp_vae)
from jsynth.sampling import CONV_DEVICE_ROWS
from jsynth.train.steps import init_gan_state, init_vae_state, make_gan_update, make_vae_update

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config: TrainConfig):
    return _DTYPES[config.compute_dtype]


def build_gan(config: TrainConfig, image_shape, num_classes: int, axis_name: str | None = None):
    """(generator, discriminator) for a resolved GAN config. num_classes=0: unconditional."""
    dtype = compute_dtype(config)
    image_shape = tuple(int(s) for s in image_shape)
    if config.model == "mlpgan":
        return (MLPGenerator(image_shape, config.width, num_classes, dtype),
                MLPDiscriminator(config.width, num_classes, config.dropout, dtype))
    check_image_shape(image_shape)
    return (DCGANGenerator(image_shape, config.width, num_classes, axis_name, dtype),
            DCGANDiscriminator(config.width, num_classes, config.dropout, dtype))


def build_vae(config: TrainConfig, image_shape, num_classes: int):
    dtype = compute_dtype(config)
    make = make_mlp_vae if config.model == "mlpvae" else make_conv_vae
    return make(tuple(int(s) for s in image_shape), num_classes, config.width, config.latent_dim, dtype)


def learning_rate_schedule(config: TrainConfig, peak: float) -> optax.Schedule:
    if config.schedule == "constant":
        return optax.constant_schedule(peak)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(peak, config.schedule_steps)
    return optax.warmup_cosine_decay_schedule(0.0, peak, config.warmup_steps,
                                              max(config.schedule_steps, config.warmup_steps + 1))


def build_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The Optax optimiser the config names, with its learning-rate schedule."""
    lr = learning_rate_schedule(config, config.learning_rate)
    if config.optimizer == "adam":
        return optax.adam(lr, b1=config.b1, b2=config.b2)
    if config.optimizer == "adamw":
        return optax.adamw(lr, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)
    return optax.sgd(lr, momentum=config.b1)


class ModelParts(NamedTuple):
    """The pure functions a run needs for one model, built from a config."""

    init: Callable            # key -> fresh state
    update: Callable          # per-device (state, batch, key) -> (state, metrics), axis_name=None
    decode: Callable          # (variables, z, labels) -> images in [0, 1]
    variables: Callable       # state -> the variables ``decode`` takes (EMA generator for GANs)
    model_range: str          # "tanh": batches in [-1, 1]; "unit": in [0, 1]
    latent_dim: int
    for_sampling: Callable    # variables -> the same plus what fixed weights let sampling precompute
    device_rows: int | None   # rows per device and decode step when sampling (sampling.make_chunk_fn)


def build_parts(config: TrainConfig, image_shape, num_classes: int) -> ModelParts:
    """Modules, optimisers and step function for a resolved config and a data shape."""
    image_shape = tuple(int(s) for s in image_shape)
    if config.family == "gan":
        generator, discriminator = build_gan(config, image_shape, num_classes)
        g_tx, d_tx = build_optimizer(config), build_optimizer(config)
        init = functools.partial(init_gan_state, generator, discriminator, g_tx, d_tx,
                                 image_shape=image_shape, latent_dim=config.latent_dim,
                                 num_classes=num_classes)
        update = make_gan_update(generator, discriminator, g_tx, d_tx, latent_dim=config.latent_dim,
                                 num_classes=num_classes, ema_decay=config.ema_decay)
        for_sampling = functools.partial(with_transformed_kernels, generator, latent_dim=config.latent_dim,
                                         num_classes=num_classes)
        rows = CONV_DEVICE_ROWS if isinstance(generator, DCGANGenerator) else None
        return ModelParts(init, update, gan_decoder(generator), gan_variables, "tanh", config.latent_dim,
                          for_sampling, rows)
    vae = build_vae(config, image_shape, num_classes)
    tx = build_optimizer(config)
    init = functools.partial(init_vae_state, vae, tx, image_shape=image_shape, num_classes=num_classes)
    update = make_vae_update(vae, tx, num_classes=num_classes, beta=config.beta,
                             likelihood=config.likelihood)
    return ModelParts(init, update, vae_decoder(vae), vae_variables, "unit", config.latent_dim,
                      lambda variables: variables, None)
