"""Privacy of synthetic data measured by distances to the training records.

A generator that memorises its training set puts synthetic rows much closer to training records
than fresh data from the same distribution would be. All three metrics compare against that
baseline, a holdout set drawn like the training set but never trained on:

* `dcr_share`: distance to closest record (DCR). Share of synthetic rows closer to the training set
  than the holdout's 5th-percentile DCR; ~0.05 for a generator that does not copy, -> 1 for copies.
* `nndr`: nearest-neighbour distance ratio d1 / d2 to the two nearest training records; near 0
  means a synthetic row singles out one record (d1 << d2), near 1 means it sits among several.
* `membership_inference_auc`: a distance attack. Score every record by -(distance to its nearest
  synthetic row) and measure, as ROC AUC (`sklearn.metrics.roc_auc_score`), how well that score
  tells training members from holdout non-members: 0.5 = no leakage, -> 1 = memorised.

Distances are Euclidean on whatever features are passed in (scale columns first for tabular data),
computed by the chunked kernels of `jsynth.evaluate.neighbours`.
"""
from __future__ import annotations

import numpy as np

from jsynth.evaluate.neighbours import DEFAULT_CHUNK_SIZE, k_nearest, nearest_distances


def dcr_share(train, holdout, synthetic, percentile: float = 5, *,
              chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, float]:
    """Share of synthetic rows closer to the training set than the holdout's `percentile` DCR.

    Args:
      train: (N_train, D) training records.
      holdout: (N_holdout, D) records from the same distribution, not trained on.
      synthetic: (N_syn, D) generated rows.
      percentile: holdout DCR percentile used as the threshold, in (0, 100).
      chunk_size: rows per chunk in the neighbour kernels.

    Returns:
      {"dcr_share": share of synthetic DCRs strictly below the threshold (expected percentile / 100
                    when synthetic rows are as far from the training set as fresh data),
       "dcr_synthetic_median", "dcr_holdout_median": median DCRs,
       f"dcr_holdout_p{percentile:g}": the threshold, e.g. "dcr_holdout_p5"}.
    """
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    dcr_synthetic, _ = nearest_distances(synthetic, train, chunk_size=chunk_size)
    dcr_holdout, _ = nearest_distances(holdout, train, chunk_size=chunk_size)
    return dcr_share_from_distances(dcr_synthetic, dcr_holdout, percentile)


def dcr_share_from_distances(dcr_synthetic, dcr_holdout, percentile: float = 5) -> dict[str, float]:
    """`dcr_share` from precomputed distances to the closest training record.

    Args:
      dcr_synthetic: (N_syn,) each synthetic row's distance to its nearest training record.
      dcr_holdout: (N_holdout,) each holdout row's distance to its nearest training record.
      percentile: holdout DCR percentile used as the threshold, in (0, 100).

    Returns:
      The dict of `dcr_share`.
    """
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    dcr_synthetic, dcr_holdout = np.asarray(dcr_synthetic), np.asarray(dcr_holdout)
    threshold = np.percentile(dcr_holdout.astype(np.float64), percentile)
    return {
        "dcr_share": float(np.mean(dcr_synthetic < threshold)),
        "dcr_synthetic_median": float(np.median(dcr_synthetic)),
        "dcr_holdout_median": float(np.median(dcr_holdout)),
        f"dcr_holdout_p{percentile:g}": float(threshold),
    }


def nndr(train, synthetic, threshold: float = 0.5, *,
         chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, float]:
    """Nearest-neighbour distance ratio of synthetic rows to the training set.

    A synthetic row that equals a training record has ratio 0, even when that record occurs twice
    (d1 = d2 = 0, where the plain ratio is 0/0).

    Args:
      train: (N_train, D) training records, N_train >= 2.
      synthetic: (N_syn, D) generated rows.
      threshold: ratio below which a row counts as singling out one record.
      chunk_size: rows per chunk in the neighbour kernels.

    Returns:
      {"nndr_median": median d1 / d2,
       f"nndr_share_below_{threshold:g}": share of rows with ratio < threshold, e.g.
       "nndr_share_below_0.5"}.
    """
    d, _ = k_nearest(synthetic, train, 2, chunk_size=chunk_size)
    return nndr_from_distances(d, threshold)


def nndr_from_distances(distances, threshold: float = 0.5) -> dict[str, float]:
    """`nndr` from precomputed (N_syn, >=2) ascending distances to the nearest training records."""
    d = np.asarray(distances)
    d1, d2 = d[:, 0].astype(np.float64), d[:, 1].astype(np.float64)
    ratio = np.divide(d1, d2, out=np.zeros_like(d1), where=d2 > 0)
    return {"nndr_median": float(np.median(ratio)),
            f"nndr_share_below_{threshold:g}": float(np.mean(ratio < threshold))}


def membership_inference_auc(train, holdout, synthetic, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> float:
    """ROC AUC of a distance-to-synthetic attack separating training members from holdout rows.

    Every record is scored by minus its distance to the nearest synthetic row (closer = "member").
    The AUC does not depend on the ratio of members to non-members, so train and holdout may differ
    in size; ties (e.g. several exact copies) count half.

    Args:
      train: (N_train, D) training records, the members (label 1).
      holdout: (N_holdout, D) non-members from the same distribution (label 0).
      synthetic: (N_syn, D) generated rows.
      chunk_size: rows per chunk in the neighbour kernels.

    Returns:
      AUC in [0, 1]: 0.5 = the synthetic data says nothing about membership, -> 1 = memorised.
    """
    train_d, _ = nearest_distances(train, synthetic, chunk_size=chunk_size)
    holdout_d, _ = nearest_distances(holdout, synthetic, chunk_size=chunk_size)
    return membership_auc_from_distances(train_d, holdout_d)


def membership_auc_from_distances(member_distances, nonmember_distances) -> float:
    """`membership_inference_auc` from each record's precomputed distance to the nearest synthetic row.

    Args:
      member_distances: (N_train,) for training records (label 1), N_train >= 1.
      nonmember_distances: (N_holdout,) for holdout records (label 0), N_holdout >= 1.

    Raises:
      ValueError: either set is empty, or a distance is NaN or infinite (e.g. NaN features).
    """
    train_d = np.asarray(member_distances, np.float64).ravel()
    holdout_d = np.asarray(nonmember_distances, np.float64).ravel()
    if train_d.size == 0 or holdout_d.size == 0:
        raise ValueError(f"membership inference needs members and non-members, got {train_d.size} "
                         f"and {holdout_d.size}")
    scores = -np.concatenate([train_d, holdout_d])
    if not np.all(np.isfinite(scores)):
        raise ValueError("membership inference distances must be finite (are there NaNs in the features?)")
    labels = np.concatenate([np.ones(train_d.size, np.int8), np.zeros(holdout_d.size, np.int8)])
    # Ties (e.g. several exact copies) count half, as in the Mann-Whitney U statistic.
    from sklearn.metrics import roc_auc_score  # here: importing scikit-learn takes ~2 s

    return float(roc_auc_score(labels, scores))
