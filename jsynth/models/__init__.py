"""Flax linen modules: architecture only (no losses, optimisers or devices)."""
from jsynth.models.dcgan import DCGANDiscriminator, DCGANGenerator, check_image_shape
from jsynth.models.mlp import MLPDiscriminator, MLPGenerator
from jsynth.models.vae import VAE, decoder_mean, make_conv_vae, make_mlp_vae

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator", "VAE",
           "check_image_shape", "decoder_mean", "make_conv_vae", "make_mlp_vae"]
