"""The metrics ``jsynth eval --workdir`` adds for a model with an encoder (``HasPosterior``: the VAEs).

* ``nll_nats``: mean over held-out images of -log p(x), importance-sampled with k =
  ``options.nll_samples`` (5000) samples (``nll``), on the held-out images binarised once (x ~
  Bernoulli(pixel), seed ``options.seed``), for models trained on binarised pixels (``binarize=true``,
  a Bernoulli decoder): the published benchmark's setting. A model trained on grey levels has another
  likelihood, so its number would not compare with anything; it is skipped, with the reason.
* ``active_units``: latent units whose posterior mean varies over the held-out images
  (Cov > 0.01, ``latents``), on the same images (binarised for a Bernoulli decoder).

At most ``options.nll_rows`` held-out images (a fixed random subset) enter both; 0 skips them.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from jsynth.evaluate import latents, nll
from jsynth.evaluate.options import EvalOptions
from jsynth.families.interface import HasPosterior


def posterior_metrics(model, heldout, options: EvalOptions, *, progress: bool = False) -> tuple[dict, dict]:
    """(results, protocol) to merge into the eval JSON; both empty for a family without a posterior.

    Args:
      model: a ``jsynth.trained.TrainedModel`` (its family, variables, image shape and config).
      heldout: the held-out real ``Dataset`` (images in [0, 1]).
      options: ``nll_samples``, ``nll_rows`` and ``seed`` are read.
      progress: a stage line on stderr.
    """
    family, variables = model.family, model.variables
    if not isinstance(family, HasPosterior) or heldout.images.shape[1:] != tuple(model.image_shape):
        return {}, {}  # not a VAE, or the wrong data (``evaluate`` names the shape mismatch)
    if options.nll_rows == 0:
        return {}, {"nll": {"skipped": "nll_rows=0"}}
    posterior = family.posterior
    if family.num_classes and heldout.labels is None:
        skipped = {"skipped": "a conditional model needs labelled held-out images"}
        return {"nll_nats": None, "active_units": None}, {"nll": skipped, "active_units": skipped}
    if progress:
        print(f"eval: active units and importance-sampled NLL (k={options.nll_samples})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    rows = np.arange(len(heldout))
    if len(rows) > options.nll_rows:
        rows = np.sort(np.random.default_rng([options.seed, 4]).choice(len(rows), options.nll_rows, replace=False))
    labels = heldout.labels[rows] if family.num_classes else None
    binary = posterior.likelihood == "bernoulli"
    images = nll.binarize_once(heldout.images[rows], options.seed) if binary else heldout.images[rows]
    inputs = f"held-out images binarised once, x ~ Bernoulli(pixel), seed {options.seed}" if binary else "held-out images"

    count = latents.count_active_units(posterior, variables, images, labels)
    results = {"active_units": count}
    protocol = {"active_units": {"threshold": latents.THRESHOLD, "statistic": "Cov_x(E_q[z_j|x])",
                                 "latent_dim": posterior.latent_dim, "images": len(rows), "inputs": inputs}}
    if binary and not model.config.binarize:
        protocol["nll"] = {"skipped": "nll_nats is measured for models trained on binarised pixels "
                                      "(--set binarize=true), the setting of the published MNIST numbers"}
    elif binary:
        log_px = nll.estimate_log_marginal(posterior, variables, images, labels,
                                           num_samples=options.nll_samples, seed=options.seed)
        results["nll_nats"] = float(-np.mean(log_px))
        protocol["nll"] = {"k": options.nll_samples, "images": len(rows), "inputs": inputs,
                           "estimator": "importance sampling with q(z|x): log mean_k p(x,z)/q(z|x) "
                                        "(Burda et al. 2016)",
                           "trained_on_binarized": bool(model.config.binarize),
                           "seconds": round(time.perf_counter() - started, 2)}
    return results, protocol
