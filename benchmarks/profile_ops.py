"""Where one sampling chunk or one training step spends its time, operation by operation.

    python benchmarks/profile_ops.py sample dcgan64 --batch-size 1024 --devices 2
    python benchmarks/profile_ops.py train --batch-size 256 --devices 1

Runs the shipped code (``make_chunk_fn`` with the benchmark's samplers, or the dcgan28 GAN step
of ``jsynth bench train``) under ``jax.profiler`` and sums the trace's events per XLA operation:
milliseconds per call (summed over devices, so operations running at once on two devices both
count), calls, and the operation's HLO (shape, operands, the layer in its metadata). Operations
that a library runs asynchronously (XLA:CPU's Eigen convolutions) show only their launch.
"""
from __future__ import annotations

import argparse
import collections
import glob
import re
import shutil
import tempfile
import time

import jsynth

jsynth.configure_cpu()  # before any JAX computation: one host device per core, XLA:CPU flags
import jax
import numpy as np
from jax.profiler import ProfileData

from jsynth.bench.archs import sampler
from jsynth.bench.train_bench import compiled_gan_step
from jsynth.parallel import data_mesh, replicate
from jsynth.sampling import BALANCED, make_chunk_fn

_RUNTIME = ("ThunkExecutor", "$", "PjitFunction", "CommonPjRt", "Wait for")  # not operations


def hlo_by_name(compiled_text: str) -> dict[str, str]:
    """Operation name -> its HLO line (result shape, opcode, operands), from compiled HLO text."""
    lines = {}
    for line in compiled_text.splitlines():
        match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) (\S+?)\((.*)", line)
        if match:
            lines.setdefault(match.group(1), f"{match.group(2)} {match.group(3)}({match.group(4)}")
    return lines


def profile(call, reps: int) -> tuple[float, collections.Counter, collections.Counter]:
    """(wall seconds per call, ns per operation name, events per operation name) over ``reps`` calls."""
    call()
    directory = tempfile.mkdtemp()
    try:
        with jax.profiler.trace(directory):
            start = time.perf_counter()
            for _ in range(reps):
                call()
            wall = (time.perf_counter() - start) / reps
        data = ProfileData.from_file(glob.glob(f"{directory}/**/*.xplane.pb", recursive=True)[0])
    finally:
        shutil.rmtree(directory)
    total, count = collections.Counter(), collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                if not event.name.startswith(_RUNTIME):
                    total[event.name] += event.duration_ns
                    count[event.name] += 1
    return wall, total, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("sample", "train"))
    parser.add_argument("arch", nargs="?", default="dcgan28", help="sample: dcgan28, dcgan64 or mlpvae")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--devices", type=int, default=len(jax.devices()))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.what == "sample":
        model = sampler(args.arch, "float32")
        mesh = data_mesh(args.devices)
        variables = replicate(mesh, model.variables)
        chunk = make_chunk_fn(model.decode, latent_dim=model.latent_dim, chunk_size=args.batch_size, mesh=mesh,
                              device_rows=model.device_rows)
        inputs = (variables, np.uint32(0), np.uint32(0), np.int32(BALANCED))
        text = chunk.lower(*inputs).compile().as_text()
        label = f"sampling chunk {args.arch} b{args.batch_size} d{args.devices}"

        def call():
            jax.block_until_ready(chunk(*inputs))
    else:
        step = compiled_gan_step(args.batch_size, args.devices)
        text = step.step.as_text()
        label = f"train step dcgan28 b{args.batch_size} d{args.devices}"
        state = {"now": step.state}

        def call():  # the step donates its state: carry it forward
            state["now"], metrics = step.step(state["now"], step.batch, step.key)
            jax.block_until_ready(metrics)
    wall, total, count = profile(call, args.reps)
    hlo = hlo_by_name(text)
    print(f"{label}: {wall * 1e3:.1f} ms per call (wall); operations sum to "
          f"{sum(total.values()) / args.reps / 1e6:.1f} ms")
    for name, ns in total.most_common(args.top):
        print(f"{ns / args.reps / 1e6:9.2f} ms  x{count[name] // args.reps:<3d} {name[:28]:28s} {hlo.get(name, '')[:150]}")


if __name__ == "__main__":
    main()
