"""Writing an evaluation: the JSON, and a report folder a person reads.

REPORT/
  metrics.md         the metrics table, what each number means, the protocol and any warnings
  samples.png        a grid of synthetic samples (one row per class for labelled samples)
  neighbours.png     the synthetic samples closest to a training record (top of each pair) above
                     that record (bottom): the visual memorisation check
  dcr.png            distances to the closest training record, synthetic vs held-out
  utility.png        TSTR beside TRTR, and the augmentation experiment
  fd.png             FD logged during training (runs trained with fd_every only)

Plots use matplotlib (Agg backend, imported only here); pictures of samples use pillow.
"""
from __future__ import annotations

import io
import json
import math
import os

import numpy as np

from jsynth.atomic import write_atomic
from jsynth.images import save_grid

# (key, label, what good looks like)
METRIC_ROWS = (
    ("fd", "Frechet distance (feature net)", "lower is better; 0 = same Gaussian statistics as the reference"),
    ("fd_infinity", "FD extrapolated to N = infinity", "lower is better; comparable across sample counts"),
    ("precision", "precision (k=3)", "share of samples inside the real manifold; higher = more realistic"),
    ("recall", "recall (k=3)", "share of real data inside the samples' manifold; higher = more diverse"),
    ("density", "density (k=5)", "~1 when samples match real data; > 1 = crowding common modes"),
    ("coverage", "coverage (k=5)", "share of real neighbourhoods with a sample; ~0.97 for real data"),
    ("label_agreement", "label agreement", "share of samples the feature net classifies as their requested class"),
    ("tstr_accuracy", "TSTR accuracy", "classifier trained on synthetic, tested on real held-out data"),
    ("trtr_accuracy", "TRTR accuracy", "the same classifier trained on as many real examples"),
    ("utility_ratio", "utility ratio TSTR / TRTR", "1 = synthetic data trains as well as real data"),
    ("dcr_share", "DCR share", "share of samples closer to training data than the holdout's 5th percentile; ~0.05 = no copying"),
    ("dcr_synthetic_median", "median DCR, synthetic", "distance to the closest training record"),
    ("dcr_holdout_median", "median DCR, held-out", "the same for unseen real data: the baseline"),
    ("nndr_median", "median NNDR", "d1 / d2 to the two nearest training records; near 0 = singles out one record"),
    ("mia_auc", "membership-inference AUC", "0.5 = membership cannot be told from the samples; 1 = memorised"),
)


def default_report_dir(json_path: str) -> str:
    """The report folder beside a JSON: ``DIR/NAME.json`` -> ``DIR/NAME_report``."""
    stem, _ = os.path.splitext(os.path.abspath(json_path))
    return f"{stem}_report"


def write_json(path: str, result: dict) -> str:
    """Writes the result atomically (NaN written as null: JSON has no NaN)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, json.dumps(clean(result), indent=1) + "\n")
    return path


def read_fd_history(workdir: str) -> list[tuple[int, float]]:
    """(step, fd) pairs that training logged into WORKDIR/metrics.jsonl (empty if none)."""
    path = os.path.join(workdir, "metrics.jsonl")
    history = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record.get("fd"), (int, float)):
                    history.append((int(record["step"]), float(record["fd"])))
    return history


def fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def markdown(result: dict) -> str:
    """The metrics table, the augmentation table, warnings and the protocol, as Markdown."""
    protocol = result.get("protocol", {})
    fn = protocol.get("feature_net", {})
    lines = [f"# jsynth evaluation: `{protocol.get('name', '')}`", ""]
    if result.get("warnings"):
        lines += ["**Warnings**", ""] + [f"- {w}" for w in result["warnings"]] + [""]
    lines += ["| metric | value | meaning |", "|---|---:|---|"]
    lines += [f"| {label} | {fmt(result.get(key))} | {meaning} |" for key, label, meaning in METRIC_ROWS
              if key in result]
    if result.get("augmentation"):
        lines += ["", "Augmentation (real subset alone vs. plus the synthetic set; test: held-out data)", "",
                  "| real labels | real examples | real only | real + synthetic | lift |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {row['fraction']:.0%} | {row['real_examples']} | {row['real_only']:.4f} | "
                  f"{row['real_plus_synthetic']:.4f} | {row['lift']:+.4f} |" for row in result["augmentation"]]
    accuracy = fn.get("test_accuracy")
    lines += ["", "## Protocol", "",
              f"- feature net `{fn.get('hash')}`: {fn.get('architecture')}; trained on "
              f"{fn.get('train_examples')} images of {fn.get('train_data')} (seed {fn.get('seed')}); "
              f"test accuracy {fmt(accuracy)} on {fn.get('test_examples')} images of {fn.get('test_data')}",
              f"- samples: {json.dumps(protocol.get('samples', {}))}",
              f"- real data: {json.dumps(protocol.get('real', {}))}",
              f"- FD / PRDC reference: {json.dumps(protocol.get('reference', {}))}",
              f"- PRDC: {json.dumps(protocol.get('prdc', {}))}",
              f"- utility: {json.dumps(protocol.get('utility', {}))}",
              f"- privacy: {json.dumps(protocol.get('privacy', {}))}",
              f"- seeds: {json.dumps(protocol.get('seeds', {}))}",
              f"- generator trained on: {protocol.get('generator_data')}",
              f"- seconds per stage: {json.dumps(result.get('seconds', {}))}", ""]
    return "\n".join(lines)


def _sample_grid(images, labels, num_classes: int, path: str) -> None:
    if labels is not None and num_classes:
        columns = 10
        rows = [images[labels == c][:columns] for c in range(num_classes)]
        rows = [np.concatenate([r, np.ones((columns - len(r),) + images.shape[1:], np.float32)]) for r in rows]
        save_grid(np.concatenate(rows), path, columns=columns)
    else:
        save_grid(images[:100], path, columns=10)


def _pairs_grid(pairs: dict, path: str, columns: int = 12) -> None:
    """Pairs in blocks: a row of synthetic samples above the row of their nearest training records."""
    syn, train = pairs["synthetic"], pairs["train"]
    blocks = []
    for start in range(0, len(syn), columns):
        block_syn, block_train = syn[start:start + columns], train[start:start + columns]
        pad = np.ones((columns - len(block_syn),) + syn.shape[1:], np.float32)
        blocks += [np.concatenate([block_syn, pad]), np.concatenate([block_train, pad])]
    save_grid(np.concatenate(blocks), path, columns=columns)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())


def _dcr_plot(dcr, path: str) -> None:
    synthetic, holdout, threshold = dcr
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    top = float(np.percentile(np.concatenate([synthetic, holdout]), 99.5))
    bins = np.linspace(0.0, max(top, 1e-6), 50)
    ax.hist(holdout, bins=bins, alpha=0.6, density=True, label="held-out real")
    ax.hist(synthetic, bins=bins, alpha=0.6, density=True, label="synthetic")
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label="held-out 5th percentile")
    ax.set_xlabel("distance to closest training record")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def _utility_plot(result: dict, path: str) -> None:
    plt = _pyplot()
    names, values, colours = ["TRTR", "TSTR"], [result["trtr_accuracy"], result["tstr_accuracy"]], ["C0", "C1"]
    for row in result.get("augmentation", []):
        names += [f"{row['fraction']:.0%} real", f"{row['fraction']:.0%} real\n+ synthetic"]
        values += [row["real_only"], row["real_plus_synthetic"]]
        colours += ["C0", "C2"]
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 1, 3.2))
    ax.bar(range(len(names)), values, color=colours)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("accuracy on held-out real data")
    low = min(values)
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    _save(fig, path)
    plt.close(fig)


def _fd_plot(history, path: str) -> None:
    plt = _pyplot()
    steps, fds = zip(*history)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, fds, marker="o")
    ax.set_xlabel("training step")
    ax.set_ylabel("FD (feature net)")
    ax.set_yscale("log")
    _save(fig, path)
    plt.close(fig)


def write_report(report_dir: str, result: dict, images: np.ndarray, labels: np.ndarray | None, *,
                 class_names=(), pairs: dict | None = None, dcr=None,
                 fd_history: list[tuple[int, float]] | None = None) -> str:
    """Writes the report folder (see the module docstring); returns its path.

    Args:
      report_dir: the folder (created).
      result: the evaluation result (the JSON's content).
      images, labels: the synthetic samples (labels None when unconditional).
      class_names: names of the real classes (their count sets the rows of the sample grid).
      pairs: {"synthetic", "train", "distance"}: samples and their nearest training records.
      dcr: (synthetic DCRs, held-out DCRs, threshold) for the histogram.
      fd_history: (step, fd) pairs logged in training.
    """
    os.makedirs(report_dir, exist_ok=True)
    _sample_grid(images, labels, len(class_names), os.path.join(report_dir, "samples.png"))
    if pairs is not None and len(pairs["synthetic"]):
        _pairs_grid(pairs, os.path.join(report_dir, "neighbours.png"))
    if dcr is not None:
        _dcr_plot(dcr, os.path.join(report_dir, "dcr.png"))
    if result.get("tstr_accuracy") is not None:
        _utility_plot(result, os.path.join(report_dir, "utility.png"))
    if fd_history:
        _fd_plot(fd_history, os.path.join(report_dir, "fd.png"))
    text = markdown(result)
    if pairs is not None:
        distances = ", ".join(f"{d:.3g}" for d in pairs["distance"][:12])
        text += (f"\n`neighbours.png`: the {len(pairs['distance'])} samples closest to a training record "
                 f"(top row of each pair) above that record; distances ({result['protocol']['privacy']['space']}): "
                 f"{distances} ... against a held-out median of {fmt(result.get('dcr_holdout_median'))}.\n")
    write_atomic(os.path.join(report_dir, "metrics.md"), text)
    return report_dir
