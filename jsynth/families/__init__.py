"""Model families: each a frozen dataclass with the one interface (``ModelFamily``) that the
training loop, sampler, evaluator and benchmarks use, in a file of its own."""
from jsynth.families.gan import GANFamily, GANState, GeneratorDecode, with_transformed_kernels
from jsynth.families.interface import ModelFamily
from jsynth.families.vae import VAEDecode, VAEFamily, VAEState

__all__ = ["GANFamily", "GANState", "GeneratorDecode", "ModelFamily", "VAEDecode", "VAEFamily", "VAEState",
           "with_transformed_kernels"]
