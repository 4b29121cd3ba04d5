"""The knobs of an evaluation (``EvalOptions``), all of which are written into the JSON's protocol."""
from __future__ import annotations

import dataclasses

from jsynth.errors import InputError
from jsynth.evaluate import feature_net as fnet
from jsynth.evaluate import splits as jsplits
from jsynth.evaluate import utility
from jsynth.evaluate.nll import DEFAULT_SAMPLES as NLL_SAMPLES
from jsynth.evaluate.classify import ClassifierRecipe
from jsynth.overrides import apply_overrides

PRIVACY_SPACES = ("pixels", "features")


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """Everything that shapes the numbers (all of it is written into the JSON's protocol).

    Attributes:
      num: synthetic samples drawn from a run (``evaluate_run``).
      seed: sampling seed, classifier seeds and every subset drawn.
      k_precision_recall, k_density_coverage: neighbour counts of the PRDC balls.
      fd_infinity: also extrapolate FD to infinitely many samples (15 extra FDs; cheap).
      utility_steps: steps of every TSTR/TRTR/augmentation classifier (equal compute).
      augment_fractions: shares of real labels kept in the augmentation experiment.
      privacy_space: "pixels" (flattened images: literal copies) or "features".
      privacy_rows: at most this many synthetic, holdout and member rows in the privacy searches
        (each synthetic row is still compared with every training record).
      dcr_percentile: the holdout DCR percentile that sets the DCR-share threshold.
      holdout_fraction: share held out when one data set is split in the evaluation.
      nll_samples: importance samples k per image of a VAE's ``nll_nats`` (``jsynth.evaluate.nll``).
      nll_rows: at most this many held-out images enter ``nll_nats`` and ``active_units`` (0: skip
        both; k decoder passes per image: ~14 min for an MLP VAE on MNIST's 10,000 on 2 cores).
      report: write the report folder (pictures, table, plots).
      pairs: nearest-training-neighbour pairs shown in the report.
      cache_dir: cache root (default $JSYNTH_CACHE or ~/.cache/jsynth); "" keeps nothing but
        the feature net.
      feature_recipe, utility_recipe: classifier architectures and budgets.
    """

    num: int = 10_000
    seed: int = 0
    k_precision_recall: int = 3
    k_density_coverage: int = 5
    fd_infinity: bool = False
    utility_steps: int = 500
    augment_fractions: tuple[float, ...] = (0.01, 0.1)
    privacy_space: str = "pixels"
    privacy_rows: int = 10_000
    dcr_percentile: float = 5.0
    holdout_fraction: float = jsplits.DEFAULT_HOLDOUT_FRACTION
    nll_samples: int = NLL_SAMPLES
    nll_rows: int = 2_000  # a fixed subset: ~3 min for an MLP VAE on 2 cores (10,000: ~14 min)
    report: bool = True
    pairs: int = 24
    cache_dir: str | None = None
    feature_recipe: ClassifierRecipe = fnet.FEATURE_NET_RECIPE
    utility_recipe: ClassifierRecipe = utility.UTILITY_RECIPE

    def __post_init__(self):
        for name in ("num", "k_precision_recall", "k_density_coverage", "utility_steps", "privacy_rows",
                     "nll_samples"):
            if getattr(self, name) <= 0:
                raise InputError(f"eval option {name} must be positive, got {getattr(self, name)}")
        if self.nll_rows < 0:
            raise InputError(f"eval option nll_rows must be >= 0 (0: no nll_nats), got {self.nll_rows}")
        if self.privacy_space not in PRIVACY_SPACES:
            raise InputError(f"eval option privacy_space must be one of {PRIVACY_SPACES}, got {self.privacy_space!r}")
        if not 0 < self.dcr_percentile < 100:
            raise InputError(f"eval option dcr_percentile must be in (0, 100), got {self.dcr_percentile}")

    def utility_classifier(self) -> ClassifierRecipe:
        return dataclasses.replace(self.utility_recipe, steps=self.utility_steps)


def with_overrides(options: EvalOptions, assignments: list[str]) -> EvalOptions:
    """Applies ``KEY=VALUE`` strings (``jsynth eval --set``) to the scalar fields of EvalOptions."""
    settable = [f.name for f in dataclasses.fields(EvalOptions) if f.name not in ("feature_recipe", "utility_recipe")]
    return apply_overrides(options, assignments, settable=settable)
