"""A class-conditional DCGAN on MNIST read from local IDX files (gzipped or not).

    python examples/dcgan_mnist.py --mnist ../shared/data/mnist --steps 2000 --workdir runs/dcgan-mnist

The same as `jsynth train --model dcgan --conditional --data mnist:DIR ...`, written as the
library calls a user would make: load the data, build the config, run (resumes if the workdir
holds a checkpoint), then stream samples to disk.
"""
import argparse

import jsynth

jsynth.configure_cpu()  # before any JAX computation: one host device per core, XLA:CPU flags
from jsynth import configs, data
from jsynth.generate import sample_to_disk
from jsynth.train import loop


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, help="directory with the MNIST IDX files")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=32, help="base channels (64 = dcgan28)")
    parser.add_argument("--workdir", default="runs/dcgan-mnist")
    args = parser.parse_args()

    mnist = data.load(f"mnist:{args.mnist}")
    print(f"{mnist.name}: {len(mnist)} images of {mnist.image_shape}")
    config = configs.TrainConfig(model="dcgan", data=f"mnist:{args.mnist}", conditional=True,
                                 steps=args.steps, batch_size=args.batch_size, width=args.width,
                                 checkpoint_every=500, sample_every=500)
    loop.run(config, args.workdir, dataset=mnist)
    manifest = sample_to_disk(args.workdir, f"{args.workdir}/samples-npz", num=1000, batch_size=200)
    print(f"wrote {manifest['num']} samples; grids in {args.workdir}/samples/")


if __name__ == "__main__":
    main()
