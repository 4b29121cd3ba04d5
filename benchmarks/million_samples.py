"""Memory stays bounded by the shard, not by N: a million samples of a small model to disk.

    python benchmarks/million_samples.py --num 1000000 --out /tmp/jsynth-million

Trains a tiny conditional MLP VAE on the bundled digits for a few steps (the weights do not matter
here), streams ``--num`` samples to ``--out`` in shards, and samples this process's resident memory
(VmRSS) every 0.2 s. Prints one JSON object: throughput and RSS before, at its peak, and at
its peak in each quarter of the run (flat quarters: no growth with N).
"""
import argparse
import json
import os
import shutil
import tempfile
import threading
import time

import jsynth

jsynth.configure_cpu()  # before any JAX computation: one host device per core, XLA:CPU flags
from jsynth import configs
from jsynth.generate import sample_to_disk
from jsynth.train import loop


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=1_000_000)
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--out", default=None, help="output directory (default: a temporary one, removed)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="jsynth-million-run-")
    out = args.out or tempfile.mkdtemp(prefix="jsynth-million-out-")
    config = configs.TrainConfig(model="mlpvae", conditional=True, steps=20, batch_size=64, width=64,
                                 latent_dim=8, progress=False, sample_every=1000)
    loop.run(config, workdir)

    samples, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            samples.append((time.perf_counter(), rss_mib()))
            time.sleep(0.2)

    before = rss_mib()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    manifest = sample_to_disk(workdir, out, num=args.num, batch_size=args.batch_size,
                              shard_size=args.shard_size, progress=False)
    seconds = time.perf_counter() - started
    stop.set()
    watcher.join()
    rss = [r for _, r in samples]
    quarters = [rss[i * len(rss) // 4:(i + 1) * len(rss) // 4] or rss for i in range(4)]
    print(json.dumps({
        "num": manifest["num"], "shards": len(manifest["shards"]), "shard_size": args.shard_size,
        "seconds": round(seconds, 2), "samples_per_s": round(args.num / seconds),
        "rss_mib_before": round(before, 1), "rss_mib_peak": round(max(rss), 1),
        "rss_mib_peak_per_quarter": [round(max(q), 1) for q in quarters],
        "shard_mib": round(args.shard_size * 8 * 8 * 4 / 2**20, 1),
        "bytes_on_disk_mib": round(sum(os.path.getsize(os.path.join(out, s["file"]))
                                       for s in manifest["shards"]) / 2**20, 1),
    }))
    shutil.rmtree(workdir)
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
