"""Metrics of synthetic data: pure functions over feature arrays (N, D).

Fidelity of the distribution (`frechet`), fidelity and diversity per sample (`prdc`), and privacy
against the training set (`privacy`), all built on the chunked neighbour kernels in `neighbours`,
which never hold an N x M distance matrix. Feature extraction (Inception, an embedding, scaled
tabular columns) happens before these functions and is not their concern.
"""
from jsynth.evaluate.auc import roc_auc
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

__all__ = [
    "ball_counts",
    "dcr_share",
    "density_coverage",
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
    "roc_auc",
]
