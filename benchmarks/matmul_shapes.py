"""XLA's matrix product against PyTorch's on the shapes the generators' layers produce, side by side.

    python benchmarks/matmul_shapes.py     (needs the ``bench`` extra: torch)

Median GFLOP/s of ``a @ b`` for each (M, K) x (K, N): jax on 1 and on 2 host devices (rows
split, as the data-parallel sampler splits them) and ``torch.mm`` with as many threads as cores,
in the same process. The README's Benchmarks quotes it for why dcgan64 trails where it does.
"""
from __future__ import annotations

import os
import time

import jsynth

jsynth.configure_cpu()  # before any JAX computation: one host device per core, XLA:CPU flags
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jsynth.parallel import data_mesh

SHAPES = [(16384, 512, 4096),    # dcgan64's 4x4 layer as col2im (K = C_in = 512)
          (16384, 4096, 512),    # the same FLOPs with a deep contraction
          (147456, 256, 512),    # a Winograd layer's per-point products, stacked
          (3072, 1536, 1536)]    # square, like the peak measurement


def median_seconds(fn, *args, reps: int = 7) -> float:
    result = fn(*args)
    getattr(result, "block_until_ready", lambda: None)()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = fn(*args)
        getattr(result, "block_until_ready", lambda: None)()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    import torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    for m, k, n in SHAPES:
        flop = 2.0 * m * k * n
        rates = []
        for devices in (1, min(2, len(jax.devices()))):
            mesh = data_mesh(devices)
            rows = NamedSharding(mesh, P(mesh.axis_names[0]))
            a = jax.device_put(jnp.ones((m, k)), rows)
            b = jax.device_put(jnp.ones((k, n)), NamedSharding(mesh, P()))
            matmul = jax.jit(lambda a, b: a @ b, out_shardings=rows)
            rates.append(flop / median_seconds(matmul, a, b) / 1e9)
        rates.append(flop / median_seconds(torch.mm, torch.ones(m, k), torch.ones(k, n)) / 1e9)
        print(f"({m}, {k}) x ({k}, {n}): jax 1 device {rates[0]:.0f}, 2 devices {rates[1]:.0f}, "
              f"torch.mm {rates[2]:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
