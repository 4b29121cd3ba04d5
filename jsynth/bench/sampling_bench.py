"""Sampling throughput: samples per second, end to end to numpy arrays in host memory.

A jsynth contender is exactly what ``jsynth sample`` runs: ``jsynth.sampling.make_chunk_fn``
(latents drawn on the devices from (seed, i), the chunk sharded over a mesh of ``devices``) and
``sample_chunks`` (chunk k+1 dispatched before chunk k is copied to the host). The chunk
function is compiled once, ahead of time, and that time is reported as ``compile_s``; the
compiled executable is what the timed loop calls, so a retrace cannot hide in the numbers.
A repetition draws ``num`` samples and counts them only as the numpy chunks arrive.
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import numpy as np

from jsynth.bench.archs import sampler
from jsynth.parallel import data_mesh, replicate
from jsynth.sampling import BALANCED, make_chunk_fn, sample_chunks


class Contender(NamedTuple):
    name: str
    run: Callable[[], int]   # draws one repetition, returns how many samples reached the host
    compile_s: float
    config: dict             # the JSON fields that describe it


def jsynth_contender(arch: str, batch_size: int, num: int, devices: int, dtype: str = "float32",
                     upsample: str = "subpixel", seed: int = 0) -> Contender:
    """Sampling of ``arch`` by jsynth's sampling core, compiled, ready to time."""
    model = sampler(arch, dtype, upsample)
    mesh = data_mesh(devices)
    variables = replicate(mesh, model.variables)
    chunk_fn = make_chunk_fn(model.decode, latent_dim=model.latent_dim, chunk_size=batch_size, mesh=mesh,
                             device_rows=model.device_rows)
    start = time.perf_counter()
    compiled = chunk_fn.lower(variables, np.uint32(seed), np.uint32(0), np.int32(BALANCED)).compile()
    compile_s = time.perf_counter() - start

    def run() -> int:
        count = 0
        for chunk in sample_chunks(compiled, variables, seed=seed, start=0, stop=num, chunk_size=batch_size):
            assert isinstance(chunk.images, np.ndarray)
            count += len(chunk.images)
        return count

    mode = upsample if arch != "mlpvae" else "dense"
    name = f"jsynth {arch} b{batch_size} d{devices} {dtype} {mode}"
    config = {"framework": "jsynth", "mode": mode, "arch": arch, "batch_size": batch_size, "num": num,
              "devices": devices, "dtype": dtype}
    return Contender(name, run, compile_s, config)


def torch_contender(arch: str, batch_size: int, num: int, mode: str) -> Contender:
    """The PyTorch twin of ``arch`` in ``mode`` (see ``torch_reference``), ready to time.

    ``torch.compile`` compiles on the first call: that call is timed as ``compile_s``.
    """
    from jsynth.bench import torch_reference as ref
    import torch

    draw = ref.make_sampler(arch, batch_size, mode)
    start = time.perf_counter()
    draw()
    compile_s = time.perf_counter() - start
    calls = -(-num // batch_size)

    def run() -> int:
        count = 0
        for i in range(calls):
            images = draw()
            count += min(batch_size, num - i * batch_size)
        return count

    dtype = "bfloat16" if mode.endswith("+bf16") else "float32"
    config = {"framework": "torch", "mode": mode.removesuffix("+bf16"), "arch": arch,
              "batch_size": batch_size, "num": num, "devices": torch.get_num_threads(), "dtype": dtype}
    return Contender(f"torch {arch} b{batch_size} {mode}", run, compile_s, config)


def max_abs_error_vs_float32(arch: str, batch_size: int, upsample: str = "subpixel", seed: int = 0):
    """(max, mean) |bfloat16 sample - float32 sample| over one chunk of the same seed and weights.

    Samples are images in [0, 1], so this is the bfloat16 error in units of the full range.
    ``upsample`` is ignored for mlpvae.
    """
    out = []
    for dtype in ("float32", "bfloat16"):
        model = sampler(arch, dtype, upsample)
        chunk_fn = make_chunk_fn(model.decode, latent_dim=model.latent_dim, chunk_size=batch_size,
                                 device_rows=model.device_rows)
        images, _ = chunk_fn(model.variables, np.uint32(seed), np.uint32(0), np.int32(BALANCED))
        out.append(np.asarray(images))
    err = np.abs(out[1] - out[0])
    return float(err.max()), float(err.mean())
