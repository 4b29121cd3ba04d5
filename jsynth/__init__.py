"""jsynth: train GANs and VAEs in JAX and turn them into measured synthetic training data.

Importing jsynth has no side effects: no environment variable, XLA flag or allocator setting
changes. ``jsynth.configure_cpu()`` (what the command line, benchmarks and examples call first)
tunes a process for XLA:CPU explicitly; see ``jsynth.cpu_setup``.

What a custom training loop composes, importable from here (README, Python API):

* modules (architecture only): ``MLPGenerator``, ``DCGANGenerator``, ``MLPDiscriminator``,
  ``DCGANDiscriminator``, ``VAE``, ``make_mlp_vae``, ``make_conv_vae``;
* model families (``ModelFamily``: init, the pure update step, sampling variables, decode):
  ``GANFamily``, ``VAEFamily``, their states ``GANState``/``VAEState``, and ``make_step`` to jit a
  family's step over a mesh (``data_mesh``, ``replicate``, ``shard_batch``);
* sampling: ``sample`` (in memory), ``sample_chunks``/``make_chunk_fn`` (streamed), and
  ``load_trained`` for a run trained by ``jsynth train``;
* the subpackages ``jsynth.data`` (``load``, ``batch_indices``) and ``jsynth.evaluate``
  (``evaluate``, ``real_splits``, ``EvalOptions``, ``evaluate_run``, ``evaluate_samples``).
"""
from jsynth import data, evaluate
from jsynth.configs import TrainConfig
from jsynth.cpu_setup import CpuSetup, configure_cpu
from jsynth.families import (GANFamily, GANState, GeneratorDecode, ModelFamily, VAEDecode, VAEFamily,
                             VAEState, with_transformed_kernels)
from jsynth.models import (VAE, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator,
                           make_conv_vae, make_mlp_vae)
from jsynth.parallel import data_mesh, replicate, shard_batch
from jsynth.sampling import BALANCED, make_chunk_fn, sample, sample_chunks
from jsynth.train.steps import make_step
from jsynth.trained import TrainedModel, load_trained

__version__ = "0.1.0"

__all__ = [
    "BALANCED", "CpuSetup", "DCGANDiscriminator", "DCGANGenerator", "GANFamily", "GANState",
    "GeneratorDecode", "MLPDiscriminator", "MLPGenerator", "ModelFamily", "TrainConfig", "TrainedModel",
    "VAE", "VAEDecode", "VAEFamily", "VAEState", "__version__", "configure_cpu", "data", "data_mesh",
    "evaluate", "load_trained", "make_chunk_fn", "make_conv_vae", "make_mlp_vae", "make_step",
    "replicate", "sample", "sample_chunks", "shard_batch", "with_transformed_kernels",
]
