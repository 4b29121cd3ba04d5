"""Privacy of a synthetic table: the image side's distance metrics in the encoded space.

Rows are encoded by ``encoding.encode_for_distances`` (fitted on the real training table), and
the metrics are ``jsynth.evaluate.privacy``'s, with the same meaning as for images:

* ``dcr_share``: share of synthetic rows closer to the training table than the holdout's
  ``percentile``-th DCR (distance to the closest training record): ~percentile/100 (0.05) when
  the generator does not copy, -> 1 for copies;
* ``nndr_median``: median d1 / d2 to the two nearest training records (0 = singles one out);
* ``mia_auc``: ROC AUC of a distance attack telling training rows from holdout rows by their
  distance to the nearest synthetic row; 0.5 = no leakage, -> 1 = memorised.

Plus one table-specific share (the idea of SDMetrics' "DCR overfitting protection"):

* ``dcr_train_closer_share``: share of synthetic rows whose nearest training row is closer than
  their nearest holdout row (ties count half); -> 1 for copies. Rows drawn afresh from the same
  distribution are as likely to have any real row as their nearest, so they score
  ``dcr_train_closer_expected`` = N_train / (N_train + N_holdout) (0.5 for equal sizes).

At most ``privacy_rows`` synthetic, holdout and member rows are drawn as queries
(``default_rng(seed)``); each query is compared with every row of the set it is searched in (all
training rows, all holdout rows, all synthetic rows).
"""
from __future__ import annotations

import numpy as np

from jsynth.evaluate import privacy
from jsynth.evaluate.neighbours import k_nearest, nearest_distances


def _rows(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= limit else x[np.sort(rng.choice(len(x), limit, replace=False))]


def privacy_metrics(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray, *, privacy_rows: int = 10_000,
                    percentile: float = 5.0, seed: int = 0) -> tuple[dict, dict]:
    """Distance-based privacy metrics of encoded rows (float32 (N, D) arrays).

    Returns:
      (metrics, distances): metrics has ``dcr_share``, ``dcr_synthetic_median``,
      ``dcr_holdout_median``, ``dcr_holdout_p{percentile}``, ``nndr_median``,
      ``nndr_share_below_0.5``, ``mia_auc``, ``dcr_train_closer_share``,
      ``dcr_train_closer_expected``; distances has the
      synthetic and holdout DCRs and the threshold (for the report's histogram).
    """
    rng = np.random.default_rng(seed)
    syn = _rows(synthetic, privacy_rows, rng)
    held = _rows(holdout, privacy_rows, rng)
    members = _rows(train, privacy_rows, rng)
    if len(train) >= 2:
        d_syn, _ = k_nearest(syn, train, 2)
        result = privacy.nndr_from_distances(d_syn)
        dcr_syn = d_syn[:, 0]
    else:  # one training row: no second neighbour
        dcr_syn, _ = nearest_distances(syn, train)
        result = {"nndr_median": float("nan"), "nndr_share_below_0.5": float("nan")}
    dcr_held, _ = nearest_distances(held, train)
    result.update(privacy.dcr_share_from_distances(dcr_syn, dcr_held, percentile))
    # The attacker holds every synthetic row: a member copied into any of them must be found.
    member_d, _ = nearest_distances(members, synthetic)
    nonmember_d, _ = nearest_distances(held, synthetic)
    result["mia_auc"] = privacy.membership_auc_from_distances(member_d, nonmember_d)
    to_holdout, _ = nearest_distances(syn, holdout)
    result["dcr_train_closer_share"] = float(np.mean(dcr_syn < to_holdout) + 0.5 * np.mean(dcr_syn == to_holdout))
    result["dcr_train_closer_expected"] = len(train) / (len(train) + len(holdout))
    threshold = result[f"dcr_holdout_p{percentile:g}"]
    return result, {"synthetic": dcr_syn, "holdout": dcr_held, "threshold": threshold}
