"""The knobs of a table evaluation (``TableEvalOptions``), all written into the JSON's protocol."""
from __future__ import annotations

import dataclasses

from jsynth.errors import InputError
from jsynth.overrides import apply_overrides


@dataclasses.dataclass(frozen=True)
class TableEvalOptions:
    """Everything that shapes the numbers of ``evaluate_table`` (``jsynth eval --set KEY=VALUE``).

    Attributes:
      target: the label column of the utility metrics (TSTR/TRTR); None skips them.
      discrete_columns: columns to treat as categorical although they hold numbers (text and bool
        columns always are; so is the target).
      seed: every subsample and every classifier's random state.
      max_rows: each table (synthetic, real, holdout) is subsampled to at most this many rows for
        every metric (the same subsample everywhere).
      privacy_rows: at most this many synthetic, holdout and member rows enter the distance searches
        (each query is still compared with every row of the set it is searched in).
      dcr_percentile: the holdout DCR percentile that sets the DCR-share threshold (as for images).
      pair_bins: bins of a continuous column in a mixed (continuous, categorical) pair.
      max_categories: one-hot columns per categorical column in the distance space and the
        classifiers' inputs; rarer categories share one "infrequent" column (scikit-learn's
        ``OneHotEncoder(max_categories=...)``), so a 100,000-category column cannot exhaust memory.
      holdout_fraction: share of --data held out when no holdout table is given.
      report: write the report folder (per-column plots, pair-trend heat map, metrics.md).
    """

    target: str | None = None
    discrete_columns: tuple[str, ...] = ()
    seed: int = 0
    max_rows: int = 100_000
    privacy_rows: int = 10_000
    dcr_percentile: float = 5.0
    pair_bins: int = 10
    max_categories: int = 100
    holdout_fraction: float = 0.2
    report: bool = True

    def __post_init__(self):
        for name in ("max_rows", "privacy_rows", "max_categories"):
            if getattr(self, name) <= 0:
                raise InputError(f"eval option {name} must be positive, got {getattr(self, name)}")
        if self.pair_bins < 2:
            raise InputError(f"eval option pair_bins must be at least 2, got {self.pair_bins}")
        if not 0 < self.dcr_percentile < 100:
            raise InputError(f"eval option dcr_percentile must be in (0, 100), got {self.dcr_percentile}")
        if not 0 < self.holdout_fraction < 1:
            raise InputError(f"eval option holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.target == "":
            object.__setattr__(self, "target", None)


def with_overrides(options: TableEvalOptions, assignments: list[str]) -> TableEvalOptions:
    """Applies ``KEY=VALUE`` strings (``jsynth eval --set``), e.g. ``target=income``,
    ``discrete_columns=a,b``."""
    return apply_overrides(options, assignments)
