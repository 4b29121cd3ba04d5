"""Training speed from packed vs in-memory data, same model, alternating (README, "Running on a cluster").

Packs the data once, then trains the same config from ``--data SPEC`` and from
``--data arrayrecord:PACKED`` in fresh workdirs, alternately for ``--rounds`` rounds, and writes
one JSON line per run: the median ``steps_per_s`` of its logged intervals (the first, which holds
the compile, left out) and the training process's peak resident memory (``wait4``).

    python benchmarks/input_training.py --data mnist:/work/mnist --out benchmarks/results/input-training.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def train(data: str, workdir: str, args) -> dict:
    command = [sys.executable, "-m", "jsynth.cli", "train", "--model", args.model, "--data", data,
               "--workdir", workdir, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--checkpoint-every", str(args.steps), "--set", "progress=false",
               "--set", f"log_every={args.log_every}", "--set", f"sample_every={args.steps}"]
    if args.conditional:
        command.append("--conditional")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)  # this run's own peak resident memory
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr.decode(errors='replace')[-3000:]}")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rates = [json.loads(line)["steps_per_s"] for line in f][1:]
    return {"steps_per_s": round(statistics.median(rates), 2), "steps_per_s_all": [round(r, 2) for r in rates],
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="mnist:/work/mnist")
    parser.add_argument("--model", default="mlpvae")
    parser.add_argument("--conditional", action="store_true", default=True)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jsynth-input-training-") as root:
        packed = os.path.join(root, "packed")
        subprocess.run([sys.executable, "-m", "jsynth.cli", "pack", "--data", args.data, "--out", packed],
                       check=True, capture_output=True)
        with open(args.out, "a") as out:
            for round_ in range(args.rounds):
                for source, data in (("in_memory", args.data), ("packed", f"arrayrecord:{packed}")):
                    record = {"bench": "input_training", "source": source, "data": args.data,
                              "model": args.model, "conditional": args.conditional,
                              "batch_size": args.batch_size, "steps": args.steps, "round": round_,
                              **train(data, os.path.join(root, f"{source}-{round_}"), args)}
                    print(json.dumps(record), flush=True)
                    out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
