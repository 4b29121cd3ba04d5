"""The evaluation suite: synthetic images + real data -> every metric, a JSON and a report folder.

Two public entry points, one per form of ``jsynth eval``:

  evaluate_run(workdir, data_spec, num=..., json_path=...)      samples a trained run, then evaluates
  evaluate_samples(samples_path, data_spec, json_path=...)       evaluates any synthetic set on disk

and ``evaluate`` beneath them, for images already in memory. The protocol, recorded in the JSON:

* Real data: ``splits.real_splits`` (train = the generator's training records, heldout = unseen).
* Fidelity, in the feature space of ``feature_net`` (trained on train, tested on heldout):
  Frechet distance (float64, eigenvalue route; optionally FD_inf), precision/recall (k=3) and
  density/coverage (k=5) of the synthetic features against the heldout features (the reference).
* Utility: TSTR beside TRTR and their ratio, and the augmentation lift at 1 % and 10 % of the real
  labels (``utility``), all tested on heldout. Needs labelled synthetic data.
* Privacy, in pixel space by default: DCR share against the heldout's 5th percentile, NNDR, and the
  distance membership-inference AUC (members: a subset of train as large as the non-members).
Every search over neighbours runs in the chunked device kernels of ``neighbours``.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from jsynth import data as jdata
from jsynth.errors import InputError
from jsynth.evaluate import feature_net as fnet
from jsynth.evaluate import report, splits as jsplits, utility
from jsynth.evaluate.classify import eval_mesh
from jsynth.evaluate.frechet import feature_statistics, frechet_distance, frechet_distance_infinity
from jsynth.evaluate.neighbours import DEFAULT_CHUNK_SIZE, k_nearest, nearest_distances
from jsynth.evaluate.options import EvalOptions
from jsynth.evaluate.posterior_metrics import posterior_metrics
from jsynth.evaluate.prdc import density_coverage, precision_recall
from jsynth.evaluate.synthetic import load_synthetic
from jsynth.evaluate.privacy import dcr_share_from_distances, membership_auc_from_distances, nndr_from_distances

class _Clock:
    """Stage timings for the JSON, and progress lines on stderr."""

    def __init__(self, progress: bool):
        self.progress, self.seconds, self._start = progress, {}, None

    def stage(self, name: str):
        now = time.perf_counter()
        if self._start is not None:
            self.seconds[self._start[0]] = round(now - self._start[1], 2)
        self._start = (name, now) if name else None
        if name and self.progress:
            print(f"eval: {name} ...", file=sys.stderr, flush=True)


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(len(x), -1)


def _rows(n: int, limit: int, seed: int, salt: int) -> np.ndarray:
    """A fixed random subset of range(n) of size min(n, limit), sorted."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, salt]).choice(n, size=limit, replace=False))


def evaluate(images: np.ndarray, labels: np.ndarray | None, real: jsplits.RealSplits, *,
             options: EvalOptions = EvalOptions(), generator_data: str | None = None,
             source: dict | None = None, json_path: str | None = None, report_dir: str | None = None,
             fd_history: list[tuple[int, float]] | None = None, progress: bool = True,
             model_metrics: tuple[dict, dict] = ({}, {})) -> dict:
    """Evaluates synthetic images against real data; writes the JSON and the report if asked.

    Args:
      images: (N, H, W, C) float32 synthetic images in [0, 1], same shape as the real ones.
      labels: (N,) int class labels of a conditional generator, or None.
      real: the real train / held-out data (``splits.real_splits``).
      options: the protocol's knobs.
      generator_data: the name of the data the generator trained on (None: unknown).
      source: where the samples came from, copied into the protocol.
      json_path: where to write the JSON (None: nowhere).
      report_dir: the report folder (None: beside the JSON as <stem>_report/, or none).
      fd_history: (step, FD) pairs logged during training, plotted in the report.
      progress: stage lines on stderr.
      model_metrics: (results, protocol) of the model itself, merged in (``posterior_metrics``:
        a VAE's ``nll_nats`` and ``active_units``).

    Returns:
      The result dict (the JSON's content).
    """
    images = np.asarray(images, np.float32)
    train, heldout = real.train, real.heldout
    if images.ndim != 4 or images.shape[1:] != train.images.shape[1:]:
        raise InputError(f"synthetic images have shape {images.shape[1:]}, the real data "
                         f"{train.images.shape[1:]}: they must match")
    if labels is not None:
        labels = np.asarray(labels, np.int32)
        if labels.shape != (len(images),) or labels.min() < 0 or labels.max() >= max(train.num_classes, 1):
            raise InputError(f"synthetic labels must be ({len(images)},) in [0, {train.num_classes}), got "
                             f"shape {labels.shape}, range [{labels.min()}, {labels.max()}]")
    clock = _Clock(progress)
    warnings = jsplits.generator_warnings(real, generator_data)
    result: dict = {}

    clock.stage("feature network")
    net = fnet.load_or_train(train, heldout, recipe=options.feature_recipe, seed=options.seed,
                             cache_dir=options.cache_dir or None, progress=progress)
    clock.stage("features")
    fake_features = net.features(images)
    real_features = net.features(heldout.images)
    clock.stage("fidelity")
    mu_real, sigma_real = feature_statistics(real_features)
    result["fd"] = frechet_distance(mu_real, sigma_real, *feature_statistics(fake_features))
    result["fd_infinity"] = (frechet_distance_infinity(real_features, fake_features, seed=options.seed)
                             if options.fd_infinity and len(images) >= 20 else None)
    result.update(precision_recall(real_features, fake_features, options.k_precision_recall))
    result.update(density_coverage(real_features, fake_features, options.k_density_coverage))
    result["label_agreement"] = (float(np.mean(net.predict(images) == labels)) if labels is not None else None)

    clock.stage("utility (TSTR, TRTR, augmentation)")
    recipe = options.utility_classifier()
    if labels is not None and train.labels is not None:
        synthetic, real_train = (images, labels), (train.images, train.labels)
        test = (heldout.images, heldout.labels)
        cache = options.cache_dir
        result.update(utility.tstr_trtr(synthetic, real_train, test, train.num_classes, recipe=recipe,
                                        seed=options.seed, cache_dir=cache))
        result["augmentation"] = utility.augmentation_lift(
            synthetic, real_train, test, train.num_classes, fractions=options.augment_fractions,
            recipe=recipe, seed=options.seed, cache_dir=cache)
    else:
        result.update(tstr_accuracy=None, trtr_accuracy=None, utility_ratio=None, augmentation=[])
        warnings.append("TSTR, TRTR and augmentation need labelled synthetic samples (a "
                        "conditional model) and labelled real data; they were skipped")

    clock.stage("privacy")
    privacy, artefacts = _privacy(images, fake_features, train, heldout, net, options)
    result.update(privacy)
    clock.stage("")
    result.update(model_metrics[0])

    result["protocol"] = _protocol(net, real, options, recipe, source, generator_data, len(images),
                                   labels is not None, artefacts["counts"])
    result["protocol"].update(model_metrics[1])
    result["warnings"] = warnings
    result["seconds"] = clock.seconds
    report_dir = report_dir or (report.default_report_dir(json_path) if json_path and options.report else None)
    result["report"] = os.path.abspath(report_dir) if report_dir else None
    result["json"] = os.path.abspath(json_path) if json_path else None
    if report_dir:
        report.write_report(report_dir, result, images, labels, class_names=train.class_names,
                            pairs=artefacts["pairs"], dcr=artefacts["dcr"], fd_history=fd_history)
    if json_path:
        report.write_json(json_path, result)
    return result


def _privacy(images, fake_features, train, heldout, net, options: EvalOptions):
    """DCR share, NNDR and MIA AUC, plus what the report draws (nearest pairs, DCR histograms)."""
    if options.privacy_space == "pixels":
        embed = _flat
    else:
        embed = net.features
    seed, limit = options.seed, options.privacy_rows
    syn_rows = _rows(len(images), limit, seed, 1)
    holdout_rows = _rows(len(heldout), limit, seed, 2)
    member_rows = _rows(len(train), len(holdout_rows), seed, 3)
    train_x = embed(train.images)
    syn_x = fake_features[syn_rows] if options.privacy_space == "features" else embed(images[syn_rows])
    holdout_x = embed(heldout.images[holdout_rows])
    chunk = DEFAULT_CHUNK_SIZE
    syn_d, syn_i = k_nearest(syn_x, train_x, 2, chunk_size=chunk)          # DCR and NNDR
    holdout_dcr, _ = nearest_distances(holdout_x, train_x, chunk_size=chunk)
    member_d, _ = nearest_distances(train_x[member_rows], syn_x, chunk_size=chunk)
    nonmember_d, _ = nearest_distances(holdout_x, syn_x, chunk_size=chunk)
    out = dcr_share_from_distances(syn_d[:, 0], holdout_dcr, options.dcr_percentile)
    out.update(nndr_from_distances(syn_d))
    out["mia_auc"] = membership_auc_from_distances(member_d, nonmember_d)
    closest = np.argsort(syn_d[:, 0], kind="stable")[: options.pairs]
    pairs = {"synthetic": images[syn_rows[closest]], "train": train.images[syn_i[closest, 0]],
             "distance": syn_d[closest, 0]}
    counts = {"synthetic": int(syn_rows.size), "holdout": int(holdout_rows.size),
              "members": int(member_rows.size), "train_records": len(train)}
    threshold = out[f"dcr_holdout_p{options.dcr_percentile:g}"]
    return out, {"pairs": pairs, "dcr": (syn_d[:, 0], holdout_dcr, threshold), "counts": counts}


def _protocol(net, real, options: EvalOptions, recipe, source, generator_data, num, labelled, counts) -> dict:
    short = lambda n: f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)  # noqa: E731
    fn = net.protocol()
    return {
        "name": f"fd{short(num)}-vs-heldout{short(len(real.heldout))}-fn{fn['hash']}",
        "feature_net": fn,
        "samples": dict(source or {}, num=num, labelled=labelled),
        "real": real.protocol(),
        "generator_data": generator_data,
        "reference": {"split": "heldout", "name": real.heldout.name, "num": len(real.heldout)},
        "fd": {"space": f"feature net penultimate layer ({net.model.feature_dim}-d)",
               "method": "float64 statistics, eigenvalues of sqrt(S1) S2 sqrt(S1)",
               "synthetic": num, "reference": len(real.heldout), "infinity": options.fd_infinity},
        "prdc": {"k_precision_recall": options.k_precision_recall,
                 "k_density_coverage": options.k_density_coverage, "space": "feature net",
                 "synthetic": num, "reference": len(real.heldout)},
        "utility": {"classifier": recipe.describe(max(real.train.num_classes, 1), 0),
                    "steps": recipe.steps, "test": real.heldout.name,
                    "augment_fractions": list(options.augment_fractions),
                    "augment_mixing": "every batch half real subset, half synthetic"},
        "privacy": {"space": options.privacy_space, "dcr_percentile": options.dcr_percentile,
                    "nndr_threshold": 0.5, "distance": "euclidean", **counts},
        "seeds": {"eval": options.seed, "feature_net": options.seed, "classifiers": options.seed,
                  "holdout_split": options.seed},
    }


def summary(result: dict) -> str:
    """A few lines for a terminal: the headline numbers, warnings and where the files are."""
    def line(*keys):
        return "  ".join(f"{k} {report.fmt(result.get(k))}" for k in keys)

    fn = result["protocol"]["feature_net"]
    lines = [f"protocol {result['protocol']['name']} (feature net test accuracy {report.fmt(fn['test_accuracy'])})",
             line("fd", "precision", "recall", "density", "coverage"),
             line("tstr_accuracy", "trtr_accuracy", "utility_ratio"),
             line("dcr_share", "nndr_median", "mia_auc")]
    if "active_units" in result:
        lines.append(line("nll_nats", "active_units"))
    lines += [f"augmentation {row['fraction']:.0%}: {row['real_only']:.4f} -> {row['real_plus_synthetic']:.4f} "
              f"({row['lift']:+.4f})" for row in result.get("augmentation", [])]
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    lines += [f"{k}: {result[k]}" for k in ("json", "report") if result.get(k)]
    return "\n".join(lines)


# ---- the two forms of `jsynth eval` -----------------------------------------------------------

def evaluate_run(workdir: str, data_spec: str | None = None, *, num: int | None = None,
                 json_path: str | None = None, report_dir: str | None = None,
                 holdout_spec: str | None = None, options: EvalOptions | None = None,
                 use_ema: bool = True, progress: bool = True) -> dict:
    """Samples a trained run and evaluates the samples (``jsynth eval --workdir``).

    Args:
      workdir: the run's directory (its newest checkpoint is used; EMA generator for GANs).
      data_spec: the real data (default: the data the run was trained on).
      num: samples to draw (default ``options.num``); sample i depends only on (seed, i).
      json_path: the JSON to write (default WORKDIR/eval/eval.json); the report goes beside it.
      report_dir: overrides the report folder.
      holdout_spec: real held-out data given explicitly (see ``splits.real_splits``).
      options: the protocol's knobs.
      use_ema: sample the EMA generator (GANs).
      progress: stage lines on stderr.

    Returns:
      The result dict, also written to ``json_path``.
    """
    from jsynth import sampling
    from jsynth.trained import load_trained

    options = options or EvalOptions()
    if num is not None:
        options = dataclasses.replace(options, num=num)
    chunk = 256
    mesh = eval_mesh(chunk)
    model = load_trained(workdir, mesh=mesh, use_ema=use_ema)
    data_spec = data_spec or model.config.data
    real = jsplits.real_splits(data_spec, holdout_spec=holdout_spec, image_size=model.config.image_size,
                               holdout_fraction=options.holdout_fraction, seed=options.seed)
    if progress:
        print(f"eval: sampling {options.num} images from {workdir} (step {model.step})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    images, labels = sampling.sample(model.decode, model.variables, num=options.num,
                                     latent_dim=model.latent_dim, seed=options.seed, chunk_size=chunk,
                                     num_classes=model.num_classes, mesh=mesh)
    source = {"kind": "run", "workdir": os.path.abspath(workdir), "model": model.config.model,
              "checkpoint_step": model.step, "seed": options.seed, "ema": use_ema,
              "sampling_seconds": round(time.perf_counter() - started, 2)}
    model_metrics = posterior_metrics(model, real.heldout, options, progress=progress)
    model_metrics[0].update({"dp": model.dp} if model.dp else {})  # the spent privacy budget travels along
    json_path = json_path or os.path.join(workdir, "eval", "eval.json")
    return evaluate(images, labels, real, options=options, generator_data=model.data, source=source,
                    json_path=json_path, report_dir=report_dir, fd_history=report.read_fd_history(workdir),
                    progress=progress, model_metrics=model_metrics)


def evaluate_samples(samples_path: str, data_spec: str, *, json_path: str | None = None,
                     report_dir: str | None = None, holdout_spec: str | None = None,
                     generator_data: str | None = None, options: EvalOptions | None = None,
                     progress: bool = True) -> dict:
    """Evaluates a synthetic set on disk (``jsynth eval --samples``), e.g. one made by another tool.

    Args:
      samples_path: a sample directory or file (see ``jsynth.evaluate.synthetic``).
      data_spec: the real data.
      json_path: the JSON to write (None: not written); the report goes beside it.
      report_dir: the report folder (default: beside the JSON, or none without one).
      holdout_spec: real held-out data given explicitly.
      generator_data: name of the data the generator trained on, if known (a ``Dataset.name``),
        so that the protocol can say whether the held-out data is really unseen.
      options: the protocol's knobs (``num`` is ignored: every sample is used).
      progress: stage lines on stderr.

    Returns:
      The result dict.
    """
    options = options or EvalOptions()
    real = jsplits.real_splits(data_spec, holdout_spec=holdout_spec, holdout_fraction=options.holdout_fraction,
                               seed=options.seed)
    images, labels = load_synthetic(samples_path, real.train.class_names)
    source = {"kind": "samples", "path": os.path.abspath(samples_path)}
    return evaluate(images, labels, real, options=options, generator_data=generator_data, source=source,
                    json_path=json_path, report_dir=report_dir, progress=progress)
