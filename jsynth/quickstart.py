"""``jsynth quickstart``: a conditional GAN and a conditional VAE on the bundled digits, end to end.

No download and no flags: trains both (minutes on a 2-core CPU), writes a grid per model with one
row per requested class, and a short text summary. The summary's "class agreement" is the share of
samples asked for class k that a 1-nearest-neighbour classifier on the real digits calls k: a
quick, honest check that the samples are recognisable digits of the requested classes.
"""
from __future__ import annotations

import os
import time

import numpy as np

from jsynth import configs, data as jdata, sampling
from jsynth.images import save_grid
from jsynth.train import loop
from jsynth.trained import load_trained


def nearest_neighbour_labels(queries: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels of each query's nearest reference image (squared Euclidean distance)."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = reference.reshape(len(reference), -1).astype(np.float64)
    d = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * q @ r.T
    return labels[np.argmin(d, axis=1)]


def class_grid(workdir: str, path: str, per_class: int = 50, shown: int = 10, seed: int = 0):
    """Samples per_class images of every class, writes ``shown`` of each as a row; returns all."""
    model = load_trained(workdir)
    k = model.num_classes
    images, labels = sampling.sample(model.decode, model.variables, num=k * per_class,
                                     latent_dim=model.latent_dim, seed=seed, chunk_size=k * per_class,
                                     num_classes=k)
    rows = [images[labels == c][:shown] for c in range(k)]  # balanced labels: i % k
    save_grid(np.concatenate(rows), path, columns=shown)
    return images, labels


def quickstart(workdir: str = "quickstart") -> str:
    """Trains, samples and summarises; returns the summary text (also in WORKDIR/summary.txt)."""
    workdir = os.path.abspath(workdir)
    digits = jdata.load_digits()
    lines = ["jsynth quickstart: conditional models on scikit-learn's bundled 8x8 digits",
             f"workdir: {workdir}", ""]
    for name, config in (("gan", configs.quickstart_gan()), ("vae", configs.quickstart_vae())):
        run_dir = os.path.join(workdir, name)
        started = time.perf_counter()
        loop.run(config, run_dir, dataset=digits)
        seconds = time.perf_counter() - started
        grid_path = os.path.join(workdir, f"{name}_samples.png")
        images, labels = class_grid(run_dir, grid_path)
        agreement = float(np.mean(nearest_neighbour_labels(images, digits.images, digits.labels) == labels))
        lines += [f"{name}: {config.model}, {config.steps} steps of batch {config.batch_size} in {seconds:.0f} s",
                  f"  samples: {grid_path} (row k = class k)",
                  f"  class agreement (1-NN on real digits): {agreement:.1%} of {len(images)} samples", ""]
    summary = "\n".join(lines)
    with open(os.path.join(workdir, "summary.txt"), "w") as f:
        f.write(summary + "\n")
    return summary
