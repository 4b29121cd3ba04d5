"""The matmul peak of the devices a benchmark runs on, measured in the benchmark's own process.

``mfu`` is achieved FLOP/s over this number, so it must come from the same devices, threads and
load as the benchmark itself: a figure from a data sheet, or from another process, would hide a
busy machine or a slow build. Each device multiplies its own n x n pair (a batch-sharded
matrix product), which is what a data-parallel model does; bfloat16 inputs accumulate in float32.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jsynth.parallel import batch_sharding, data_mesh, replicated

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def matmul_peak_gflops(num_devices: int, dtype: str = "float32", n: int = 1536, reps: int = 5) -> float:
    """Best-of-``reps`` GFLOP/s of one n x n x n matrix product per device on ``num_devices``."""
    mesh = data_mesh(num_devices)
    dt = DTYPES[dtype]
    a = jax.device_put(jnp.asarray(np.random.default_rng(0).standard_normal((num_devices * n, n)), dt),
                       batch_sharding(mesh))
    b = jax.device_put(jnp.asarray(np.random.default_rng(1).standard_normal((n, n)), dt), replicated(mesh))
    matmul = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32),
                     out_shardings=batch_sharding(mesh))
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * num_devices * n ** 3 / best / 1e9
