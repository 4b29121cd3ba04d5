"""Recipe ablation at a fixed wall-clock budget: each trick added one at a time, measured by `jsynth eval`.

    python benchmarks/recipes.py --data mnist:DIR --budget 5m --out benchmarks/results/recipes.jsonl \
        --only gan          # or vae, floor, or a comma list of row names

Every row is two commands a user could type: `jsynth train ... --time-limit BUDGET` (in a fresh
workdir under --root) and `jsynth eval --workdir ... --set augment_fractions=` (the augmentation runs
are left to the final recipes: they triple the evaluation time). The `floor` row evaluates 10,000 real
training images as if they were samples: the best FD/PRDC/TSTR a generator could reach under this
protocol. One JSON object per row is appended to --out: the row, its command, the steps reached,
images/s of training, and the eval JSON's headline keys. Rows run one at a time (the machine has two
cores): run nothing else meanwhile, the budget is wall clock.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# Each row: (name, family, train arguments, extra eval arguments). Rows of one family add one trick
# to the row before. The GAN baseline is today's default conditional DCGAN (projection discriminator)
# at the README's width; the `nll` rows train unconditional MLP VAEs on binarised pixels and measure
# nll_nats on 1,000 held-out images with k = 5,000 (the other rows skip it: nll_rows=0).
_GAN = ["--model", "dcgan", "--conditional", "--batch-size", "64", "--set", "width=16"]
_VAE = ["--conditional", "--batch-size", "128"]
_NO_NLL = ["--set", "nll_rows=0"]
_NLL = ["--set", "nll_rows=1000", "--set", "nll_samples=5000"]
_HINGE_SN = ["--set", "gan_loss=hinge", "--set", "spectral_norm=true"]
ROWS = [
    ("gan-baseline", "gan", _GAN, []),
    ("gan+hinge", "gan", _GAN + ["--set", "gan_loss=hinge"], []),
    ("gan+hinge+sn", "gan", _GAN + _HINGE_SN, []),
    ("gan+hinge+sn+diffaug", "gan", _GAN + _HINGE_SN + ["--set", "diffaugment=translation,cutout"], []),
    # Hinge and spectral norm cost FD at this budget (the rows above), so these try the other tricks
    # on the baseline alone.
    ("gan+diffaug", "gan-alone", _GAN + ["--set", "diffaugment=translation,cutout"], []),
    ("gan+ttur", "gan-alone", _GAN + ["--set", "learning_rate=1e-4", "--set", "d_learning_rate=4e-4"], []),
    # The learning rate decayed to 0 over the steps the budget allows (~5,500 here): a later --steps wins.
    ("gan+cosine", "gan-alone", _GAN + ["--steps", "5500", "--set", "schedule=cosine"], []),
    ("vae-mlp-baseline", "vae", ["--model", "mlpvae"] + _VAE, _NO_NLL),
    ("vae-mlp+film", "vae", ["--model", "mlpvae"] + _VAE + ["--set", "vae_conditioning=film"], _NO_NLL),
    ("vae-conv+film", "vae", ["--model", "convvae"] + _VAE + ["--set", "vae_conditioning=film"], _NO_NLL),
    ("vae-conv+film+warmup", "vae", ["--model", "convvae"] + _VAE + ["--set", "vae_conditioning=film",
                                                                      "--set", "kl_warmup_steps=2000"], _NO_NLL),
    ("nll-mlp-binarized", "nll", ["--model", "mlpvae", "--batch-size", "128", "--set", "binarize=true"], _NLL),
    ("nll-mlp-binarized+iwae5", "nll", ["--model", "mlpvae", "--batch-size", "128", "--set", "binarize=true",
                                        "--set", "iwae_samples=5"], _NLL),
]
HEADLINE = ("fd", "precision", "recall", "density", "coverage", "label_agreement", "tstr_accuracy",
            "trtr_accuracy", "utility_ratio", "dcr_share", "mia_auc", "nll_nats", "active_units")


def jsynth(*args) -> float:
    """Runs `jsynth ARGS`; returns its wall-clock seconds (a failure stops the script)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jsynth.cli", *map(str, args)], check=True)
    return time.perf_counter() - started


def train_rate(workdir: str) -> tuple[int, float]:
    """(steps reached, median steps/s of the logged intervals after the first)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    rates = sorted(r["steps_per_s"] for r in records[1:]) or [records[-1]["steps_per_s"]]
    return records[-1]["step"], rates[len(rates) // 2]


def floor(data: str, root: str) -> dict:
    """10,000 real training images evaluated as samples."""
    import numpy as np
    from jsynth.evaluate import splits
    from jsynth.labels import label_ids

    train = splits.real_splits(data).train
    rows = np.random.default_rng(0).choice(len(train), 10_000, replace=False)
    path = os.path.join(root, "real10k.npz")
    ids = label_ids(train.class_names, train.num_classes)  # `eval --samples` reads the data's own ids
    np.savez(path, x=(train.images[rows] * 255).round().astype(np.uint8), y=ids[train.labels[rows]])
    out = os.path.join(root, "floor.json")
    seconds = jsynth("eval", "--samples", path, "--data", data, "--json", out, "--set", "augment_fractions=")
    with open(out) as f:
        result = json.load(f)
    return {"row": "floor (10,000 real training images)", "eval_s": round(seconds, 1),
            **{k: result.get(k) for k in HEADLINE}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--root", default="/tmp/jsynth-recipes", help="workdirs go here")
    parser.add_argument("--out", required=True, help="JSON lines to append to")
    parser.add_argument("--only", default="floor,gan,gan-alone,vae,nll", help="families or row names (comma list)")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    os.makedirs(args.root, exist_ok=True)
    records = []
    if "floor" in wanted:
        records.append(floor(args.data, args.root))
        with open(args.out, "a") as f:
            f.write(json.dumps(records[-1]) + "\n")
    for name, family, train_args, eval_args in ROWS:
        if not ({name, family} & wanted):
            continue
        workdir = os.path.join(args.root, name)
        command = ["train", "--data", args.data, "--workdir", workdir, "--steps", "1000000",
                   "--time-limit", args.budget, "--set", "progress=false", "--set", "log_every=100",
                   "--set", "sample_every=1000000", "--set", "checkpoint_every=1000000"] + train_args
        train_s = jsynth(*command)
        steps, rate = train_rate(workdir)
        eval_json = os.path.join(workdir, "eval.json")
        eval_s = jsynth("eval", "--workdir", workdir, "--data", args.data, "--json", eval_json,
                        "--set", "augment_fractions=", *eval_args)
        with open(eval_json) as f:
            result = json.load(f)
        batch = int(train_args[train_args.index("--batch-size") + 1])
        records.append({"row": name, "budget": args.budget, "command": "jsynth " + " ".join(command),
                        "steps": steps, "steps_per_s": round(rate, 2), "images_per_s": round(rate * batch, 1),
                        "train_s": round(train_s, 1), "eval_s": round(eval_s, 1),
                        "date": time.strftime("%Y-%m-%d %H:%M"), **{k: result.get(k) for k in HEADLINE}})
        with open(args.out, "a") as f:
            f.write(json.dumps(records[-1]) + "\n")
        print(json.dumps(records[-1]), flush=True)


if __name__ == "__main__":
    main()
