"""Factories from a ``TrainConfig`` to modules, Optax optimisers and model families.

This is where config fields become constructor arguments, so that neither the modules nor the
jitted steps ever see a config.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from jsynth import augment, losses
from jsynth.configs import TABLE_FAMILIES, TrainConfig
from jsynth.families import GANFamily, VAEFamily
from jsynth.models import (DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator,
                           check_image_shape, make_conv_vae, make_mlp_vae)

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# configs.GAN_LOSSES -> (discriminator loss, generator loss); wgan-gp adds its penalty (build_family).
_GAN_LOSSES = {"nonsaturating": (losses.discriminator_loss, losses.generator_loss_nonsaturating),
               "hinge": (losses.discriminator_loss_hinge, losses.generator_loss_critic),
               "wgan-gp": (losses.critic_loss_wasserstein, losses.generator_loss_critic)}
# configs.DIFFAUGMENTS -> the transformation.
_DIFFAUGMENTS = {"translation": augment.translation, "cutout": augment.cutout, "color": augment.color}


def compute_dtype(config: TrainConfig):
    return _DTYPES[config.compute_dtype]


def build_gan(config: TrainConfig, image_shape, num_classes: int, axis_name: str | None = None):
    """(generator, discriminator) for a resolved GAN config. num_classes=0: unconditional."""
    dtype = compute_dtype(config)
    image_shape = tuple(int(s) for s in image_shape)
    # An unresolved config's d_conditioning (None) leaves the module's own default.
    d_options = dict(spectral_norm=config.spectral_norm,
                     **({"conditioning": config.d_conditioning} if config.d_conditioning else {}))
    if config.model == "mlpgan":
        return (MLPGenerator(image_shape, config.width, num_classes, dtype, latent_dim=config.latent_dim),
                MLPDiscriminator(config.width, num_classes, config.dropout, dtype, **d_options))
    check_image_shape(image_shape)
    return (DCGANGenerator(image_shape, config.width, num_classes, axis_name, dtype, latent_dim=config.latent_dim),
            DCGANDiscriminator(config.width, num_classes, config.dropout, dtype, **d_options))


def build_vae(config: TrainConfig, image_shape, num_classes: int):
    dtype = compute_dtype(config)
    image_shape, film = tuple(int(s) for s in image_shape), config.vae_conditioning == "film"
    if config.model == "mlpvae":
        return make_mlp_vae(image_shape, num_classes, config.width, config.latent_dim, dtype, film=film)
    return make_conv_vae(image_shape, num_classes, config.width, config.latent_dim, dtype, film=film,
                         res_blocks=config.res_blocks)


def learning_rate_schedule(config: TrainConfig, peak: float) -> optax.Schedule:
    if config.schedule == "constant":
        return optax.constant_schedule(peak)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(peak, config.schedule_steps)
    return optax.warmup_cosine_decay_schedule(0.0, peak, config.warmup_steps,
                                              max(config.schedule_steps, config.warmup_steps + 1))


def build_optimizer(config: TrainConfig, learning_rate: float | None = None) -> optax.GradientTransformation:
    """The Optax optimiser the config names, with its learning-rate schedule.

    ``learning_rate``: the schedule's peak if not the config's (a GAN discriminator's own).
    """
    lr = learning_rate_schedule(config, config.learning_rate if learning_rate is None else learning_rate)
    if config.optimizer == "adam":
        return optax.adam(lr, b1=config.b1, b2=config.b2)
    if config.optimizer == "adamw":
        return optax.adamw(lr, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)
    return optax.sgd(lr, momentum=config.b1)


def build_family(config: TrainConfig, image_shape, num_classes: int,
                 axis_name: str | None = None) -> GANFamily | VAEFamily:
    """The model family (modules, optimisers, loss settings) of a resolved config and data shape.

    ``axis_name``: the per-device family for ``shard_map``/``pmap`` (see ``jsynth.train.steps``).
    For the table models ``image_shape`` is the data's ``TableShape`` (``jsynth.table_builders``).
    """
    if config.family in TABLE_FAMILIES:
        from jsynth.table_builders import build_table_family  # it builds on this module's optimisers
        return build_table_family(config, image_shape, num_classes, axis_name)
    if config.family == "gan":
        generator, discriminator = build_gan(config, image_shape, num_classes, axis_name)
        d_loss, g_loss = _GAN_LOSSES[config.gan_loss]
        return GANFamily(generator, discriminator, build_optimizer(config),
                         build_optimizer(config, config.d_learning_rate),
                         ema_decay=config.ema_decay, axis_name=axis_name, d_loss=d_loss, g_loss=g_loss,
                         gp_weight=config.gp_weight if config.gan_loss == "wgan-gp" else 0.0,
                         r1_gamma=config.r1_gamma, r1_every=config.r1_every, n_critic=config.n_critic,
                         augment=tuple(_DIFFAUGMENTS[name] for name in config.diffaugment_names))
    return VAEFamily(build_vae(config, image_shape, num_classes), build_optimizer(config), beta=config.beta,
                     likelihood=config.likelihood, kl_warmup_steps=config.kl_warmup_steps,
                     free_bits=config.free_bits, iwae_samples=config.iwae_samples, binarize=config.binarize,
                     axis_name=axis_name)
