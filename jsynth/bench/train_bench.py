"""Training throughput of the dcgan28 GAN step: real images per second.

The contender is the step that ``jsynth train`` runs: ``jsynth.make_step`` of a ``GANFamily`` over a
data mesh of ``devices``, with ``DCGANGenerator((28, 28, 1), 64)``, ``dcgan28-disc``
(``DCGANDiscriminator(64, dropout=0.3)``), Adam(2e-4, 0.5, 0.999) on both and BatchNorm in
training mode (the ``tf``-style step of docs/architectures.md). The step is compiled ahead of
time (``compile_s``); a repetition runs ``steps`` steps and ends when the last step's losses are
floats in host memory.
"""
from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from jsynth.bench.archs import DTYPES
from jsynth.bench.sampling_bench import Contender
from jsynth.models import DCGANDiscriminator, DCGANGenerator
from jsynth.parallel import data_mesh, replicate, shard_batch
from jsynth.families import GANFamily
from jsynth.train.steps import make_step


class CompiledStep(NamedTuple):
    step: Any                 # the compiled (state, batch, key) -> (state, metrics)
    compile_s: float
    state: Any
    batch: dict
    key: Any


def compiled_gan_step(batch_size: int, devices: int, dtype: str = "float32", upsample: str = "subpixel",
                      seed: int = 0, width: int = 64) -> CompiledStep:
    """The dcgan28 GAN step as ``jsynth train`` builds it, compiled ahead of time, with its inputs.

    ``width`` 64 is dcgan28 / dcgan28-disc; other widths are for quick tests only.
    """
    generator = DCGANGenerator((28, 28, 1), width, dtype=DTYPES[dtype], upsample=upsample)
    discriminator = DCGANDiscriminator(width, dropout=0.3, dtype=DTYPES[dtype])
    g_tx = optax.adam(2e-4, b1=0.5, b2=0.999)
    d_tx = optax.adam(2e-4, b1=0.5, b2=0.999)
    mesh = data_mesh(devices)
    family = GANFamily(generator, discriminator, g_tx, d_tx)
    state = replicate(mesh, jax.jit(family.init)(jax.random.key(seed)))
    real = np.random.default_rng(seed).uniform(-1, 1, (batch_size, 28, 28, 1)).astype(np.float32)
    batch = shard_batch(mesh, {"image": real})
    step = make_step(family, mesh)
    key = replicate(mesh, jax.random.key(seed))
    start = time.perf_counter()
    compiled = step.lower(state, batch, key).compile()
    return CompiledStep(compiled, time.perf_counter() - start, state, batch, key)


def jsynth_contender(batch_size: int, steps: int, devices: int, dtype: str = "float32",
                     upsample: str = "subpixel", seed: int = 0, width: int = 64) -> Contender:
    """``steps`` dcgan28 GAN steps by jsynth's step builder (``compiled_gan_step``), ready to time."""
    compiled = compiled_gan_step(batch_size, devices, dtype, upsample, seed, width)
    holder = {"state": compiled.state}

    def run() -> int:
        state = holder["state"]
        for i in range(steps):
            state, metrics = compiled.step(state, compiled.batch, jax.random.fold_in(compiled.key, i))
        holder["state"] = state
        float(metrics["d_loss"])  # the step is done when its losses are on the host
        return steps * batch_size

    config = {"framework": "jsynth", "mode": upsample, "arch": "dcgan28", "batch_size": batch_size,
              "num": steps * batch_size, "devices": devices, "dtype": dtype}
    return Contender(f"jsynth train b{batch_size} d{devices} {dtype} {upsample}", run, compiled.compile_s, config)


def torch_contender(batch_size: int, steps: int, mode: str = "eager") -> Contender:
    """``steps`` PyTorch dcgan28 GAN steps (``torch_reference.make_train_step``)."""
    import torch

    from jsynth.bench import torch_reference as ref

    step = ref.make_train_step(batch_size, mode)
    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start

    def run() -> int:
        for _ in range(steps):
            step()
        return steps * batch_size

    config = {"framework": "torch", "mode": mode, "arch": "dcgan28", "batch_size": batch_size,
              "num": steps * batch_size, "devices": torch.get_num_threads(), "dtype": "float32"}
    return Contender(f"torch train b{batch_size} {mode}", run, compile_s, config)
