"""Where sampling time goes: each transposed convolution of dcgan28 / dcgan64 alone, per lowering.

    python benchmarks/profile_layers.py [--batch 128]

One host device (one core), CPU seconds per call (``time.process_time``: robust to other
processes on a shared machine), best lowering marked. Prints exact GFLOP per CPU-second for
``dilated`` (flax ConvTranspose / lax.conv_transpose), the two sub-pixel lowerings, and the bare
matrix product that col2im performs (the ceiling for a dot-based lowering), beside the matmul
peak of the same core, and then the whole chunk: compute, host copy and dispatch.
"""
from __future__ import annotations

import argparse
import time

import jsynth

jsynth.configure_cpu()  # before any JAX computation: one host device per core, XLA:CPU flags
import jax
import jax.numpy as jnp
import numpy as np

from jsynth.bench import flops
from jsynth.bench.archs import sampler
from jsynth.models.subpixel import LOWERINGS, choose_lowering, conv_transpose

LAYERS = {"dcgan28": [(7, 256, 128, 5, 1), (7, 128, 64, 5, 2), (14, 64, 1, 5, 2)],
          "dcgan64": [(4, 512, 256, 4, 2), (8, 256, 128, 4, 2), (16, 128, 64, 4, 2), (32, 64, 3, 4, 2)]}


def cpu_seconds(fn, *args, reps=6):
    fn = jax.jit(fn)
    fn(*args).block_until_ready()
    out = []
    for _ in range(reps):
        start = time.process_time()
        fn(*args).block_until_ready()
        out.append(time.process_time() - start)
    return float(np.median(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    b = parser.parse_args().batch
    device = jax.devices()[0]
    a = jax.device_put(jnp.ones((1536, 1536)), device)
    print(f"matmul peak, one core: {2 * 1536 ** 3 / cpu_seconds(lambda a: a @ a, a) / 1e9:.1f} GFLOP per CPU-s")
    dn = ("NHWC", "HWIO", "NHWC")
    for arch, layers in LAYERS.items():
        exact = {l.name: l.exact_macs for l in flops.layers(arch)}
        print(f"\n{arch}, batch {b} on one core: exact GFLOP per CPU-second (ms of CPU per call)")
        for (n, c_in, c_out, k, s) in layers:
            x = jax.device_put(jnp.ones((b, n, n, c_in)), device)
            w = jax.device_put(jnp.ones((k, k, c_in, c_out)), device)
            macs = next(v for name, v in exact.items() if f"{c_in}->{c_out} k{k} s{s}" in name)
            fns = {"dilated": lambda x, w: jax.lax.conv_transpose(x, w, (s, s), "SAME", dimension_numbers=dn)}
            for low in LOWERINGS:
                fns[low] = (lambda low: lambda x, w: conv_transpose(x, w, (s, s), "SAME", lowering=low))(low)
            row = []
            for name, fn in fns.items():
                t = cpu_seconds(fn, x, w)
                row.append(f"{name} {2 * b * macs / t / 1e9:5.1f} ({t * 1e3:6.1f} ms)")
            m = jax.device_put(jnp.ones((b * n * n, c_in)), device)
            kk = jax.device_put(jnp.ones((c_in, k * k * c_out)), device)
            t = cpu_seconds(lambda m, kk: m @ kk, m, kk)
            row.append(f"bare col2im dot {2 * b * macs / t / 1e9:5.1f}")
            print(f"  convT {n}x{n}x{c_in}->{c_out} k{k} s{s} [uses {choose_lowering(x.shape, w.shape)}]: "
                  + " | ".join(row))
        model = sampler(arch)
        z = jax.device_put(jnp.ones((b, model.latent_dim)), device)
        decode = jax.jit(lambda v, z: model.decode(v, z, None))
        t_compute = cpu_seconds(lambda v, z: model.decode(v, z, None), model.variables, z)
        out = decode(model.variables, z)
        out.block_until_ready()
        start = time.perf_counter()
        np.asarray(out)
        t_copy = time.perf_counter() - start
        tiny = jax.jit(lambda z: z + 1)
        tiny(z).block_until_ready()
        start = time.perf_counter()
        for _ in range(100):
            tiny(z).block_until_ready()
        t_dispatch = (time.perf_counter() - start) / 100
        print(f"  whole generator: {t_compute * 1e3:.1f} ms CPU ({2 * b * sum(exact.values()) / t_compute / 1e9:.1f} "
              f"exact GFLOP/CPU-s); host copy {t_copy * 1e3:.2f} ms; dispatch of a jitted call {t_dispatch * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
