"""Evaluation of synthetic data: metric maths apart from the plumbing.

Maths, pure functions over feature arrays (N, D): fidelity of the distribution (`frechet`),
fidelity and diversity per sample (`prdc`), and privacy against the training set (`privacy`), all
built on the chunked neighbour kernels in `neighbours`, which never hold an N x M distance matrix
(`chunks`: one compiled function over fixed-shape chunks, shared with the classifier's inference).

Plumbing: the feature network trained on the real data and cached (`feature_net`, on `classify`),
train/held-out real splits (`splits`), TSTR/TRTR/augmentation (`utility`), the suite that samples
and computes everything (`suite`: `evaluate_run`, `evaluate_samples`), the JSON and report folder
(`report`), its knobs (`options`), and FD during training (`inloop`).

Of a model with an encoder (a VAE's ``family.posterior``): the importance-sampled log-likelihood
(`nll`: `estimate_log_marginal`) and the active latent units (`latents`: `count_active_units`),
which `suite` reports as ``nll_nats`` and ``active_units`` (`posterior_metrics`).
"""
from jsynth.evaluate.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_infinity,
)
from jsynth.evaluate.neighbours import (
    ball_counts,
    k_nearest,
    kth_neighbour_distances,
    nearest_distances,
)
from jsynth.evaluate.prdc import density_coverage, prdc, precision_recall
from jsynth.evaluate.privacy import dcr_share, membership_inference_auc, nndr
from jsynth.evaluate.feature_net import FeatureNet, load_or_train as feature_network
from jsynth.evaluate.latents import active_units, count_active_units
from jsynth.evaluate.nll import estimate_log_marginal
from jsynth.evaluate.splits import RealSplits, real_splits
from jsynth.evaluate.options import EvalOptions
from jsynth.evaluate.suite import evaluate, evaluate_run, evaluate_samples

__all__ = [
    "EvalOptions",
    "FeatureNet",
    "RealSplits",
    "evaluate",
    "evaluate_run",
    "evaluate_samples",
    "feature_network",
    "real_splits",
    "active_units",
    "ball_counts",
    "count_active_units",
    "dcr_share",
    "density_coverage",
    "estimate_log_marginal",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_infinity",
    "k_nearest",
    "kth_neighbour_distances",
    "membership_inference_auc",
    "nearest_distances",
    "nndr",
    "prdc",
    "precision_recall",
]
