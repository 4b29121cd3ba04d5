"""Factories from a ``TrainConfig`` and a ``TableShape`` to the table families (``--model tvae|ctgan``).

The image side's ``jsynth.builders.build_family`` hands table configs here.
"""
from __future__ import annotations

from jsynth.builders import build_optimizer
from jsynth.configs import ConfigError, TrainConfig
from jsynth.families.table_shape import TableShape
from jsynth.families.tabular_gan import CTGANFamily
from jsynth.families.tabular_vae import TVAEFamily
from jsynth.models.tabular import TVAE, CTGANDiscriminator, CTGANGenerator


def build_table_family(config: TrainConfig, shape, num_classes: int,
                       axis_name: str | None = None) -> TVAEFamily | CTGANFamily:
    """The TVAE or CTGAN family of a resolved config; ``shape``: a TableShape or its JSON form
    (what a checkpoint's metadata holds as its data shape)."""
    shape = TableShape.of(shape)
    hidden = (config.width, config.width)
    if config.family == "tabular_vae":
        vae = TVAE(shape.layout, hidden, config.latent_dim, num_classes)
        return TVAEFamily(vae, shape, build_optimizer(config), kl_weight=config.beta, axis_name=axis_name)
    if config.batch_size % config.pac:
        raise ConfigError(f"batch size {config.batch_size} is not a multiple of pac={config.pac} (the ctgan "
                          f"critic judges packs of pac rows): give e.g. --batch-size "
                          f"{max(config.pac, config.batch_size // config.pac * config.pac)}")
    generator = CTGANGenerator(shape.output_dim, hidden, axis_name)
    discriminator = CTGANDiscriminator(hidden, config.pac, config.critic_dropout)
    return CTGANFamily(generator, discriminator, shape, build_optimizer(config),
                       build_optimizer(config, config.d_learning_rate), noise_dim=config.latent_dim,
                       gp_weight=config.gp_weight, ema_decay=config.ema_decay, num_classes=num_classes,
                       axis_name=axis_name)
