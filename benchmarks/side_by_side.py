"""jsynth against PyTorch, side by side, in one process: the numbers of the README's Benchmarks.

    python benchmarks/side_by_side.py --out benchmarks/results/cpu.jsonl
    python benchmarks/report.py benchmarks/results/cpu.jsonl --png benchmarks/results/cpu.png

Each part times its contenders alternately (interleaved rounds, medians; ``jsynth.bench.timing``)
and appends every record to ``--out`` as soon as it is measured, so a long run that is stopped
keeps what it had. Parts:

* ``float32``: dcgan28 and dcgan64 at batch 256 and 1024, jsynth (sub-pixel and dilated
  transposed convolutions, all devices) against PyTorch eager, channels-last and torch.compile;
* ``mlpvae``: the MLP decoder, the same way;
* ``devices``: jsynth on 1 and on all devices;
* ``bfloat16``: jsynth and PyTorch (autocast) in bfloat16 beside float32, with the bfloat16
  samples' error against float32 ones;
* ``train``: the dcgan28 GAN step (batch 256, Adam, BatchNorm in training mode).

Without PyTorch (``pip install -e ".[bench]"``) the jsynth side runs alone, with a message.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jsynth

jsynth.configure_cpu()  # before any JAX computation: one host device per core, XLA:CPU flags
from jsynth.bench import runner

PARTS = ("float32", "mlpvae", "devices", "bfloat16", "train")
TORCH_MODES = ["eager", "channels_last", "compile"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/cpu.jsonl")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", default="256,1024")
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    sink = open(args.out, "a")

    def emit(record):
        record = {**record, "command": "python benchmarks/side_by_side.py " + " ".join(argv or sys.argv[1:])}
        print(runner.format_row(record), flush=True)
        sink.write(json.dumps(record) + "\n")
        sink.flush()

    parts = args.parts.split(",")
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    common = dict(rounds=args.rounds, emit=emit)
    if "float32" in parts:
        for arch in ("dcgan28", "dcgan64"):
            runner.run_sampling([arch], sizes, upsamples=["subpixel", "dilated"], torch_modes=TORCH_MODES, **common)
    if "mlpvae" in parts:
        runner.run_sampling(["mlpvae"], sizes, devices=[1, None], torch_modes=["eager", "compile"], **common)
    if "devices" in parts:
        runner.run_sampling(["dcgan28", "dcgan64"], sizes[:1], devices=[1, None], **common)
    if "bfloat16" in parts:
        # PyTorch's bfloat16 autocast is slow on a CPU without AVX-512 BF16: one chunk per round.
        runner.run_sampling(["dcgan28", "dcgan64"], sizes[:1], num=sizes[0], dtypes=["float32", "bfloat16"],
                            torch_modes=["eager"], **{**common, "rounds": min(args.rounds, 3)})
    if "train" in parts:
        runner.run_train([256], steps=2, upsamples=["subpixel", "dilated"], torch_modes=["eager", "compile"],
                         **{**common, "rounds": min(args.rounds, 3)})
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
