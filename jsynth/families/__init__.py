"""Model families: each a frozen dataclass with the one interface (``ModelFamily``) that the
training loop, sampler, evaluator and benchmarks use, in a file of its own."""
from jsynth.families.gan import GANFamily, GANState, GeneratorDecode, with_transformed_kernels
from jsynth.families.interface import HasPosterior, ModelFamily
from jsynth.families.vae import VAEDecode, VAEFamily, VAEPosterior, VAEState

__all__ = ["GANFamily", "GANState", "GeneratorDecode", "HasPosterior", "ModelFamily", "VAEDecode", "VAEFamily",
           "VAEPosterior", "VAEState", "with_transformed_kernels"]
