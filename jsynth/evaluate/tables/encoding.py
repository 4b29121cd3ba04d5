"""The numeric space that distances and classifiers see: scaled numbers and one-hot categories.

A scikit-learn ``ColumnTransformer``, fitted on the real training table only:

* continuous columns: missing values imputed by the median, plus a 0/1 "was missing" column for
  each column with missing values (``SimpleImputer(add_indicator=True)``), then standardised
  (``StandardScaler``), so that one standard deviation weighs 1 in a Euclidean distance;
* categorical columns (missing values are already the category ``frames.MISSING``): one-hot, at
  most ``max_categories`` columns each; rarer categories, and categories the real table lacks,
  share its "infrequent" column (``OneHotEncoder(max_categories=..., handle_unknown=
  "infrequent_if_exist")``). Two rows that differ in one category are sqrt(2) apart.
"""
from __future__ import annotations

import numpy as np


def make_encoder(continuous, categorical, max_categories: int = 100, *, dense: bool = False):
    """An unfitted ``ColumnTransformer`` over the named columns (see the module docstring).

    Args:
      continuous, categorical: column names (either may be empty).
      max_categories: one-hot columns per categorical column at most.
      dense: always return a dense array (for distances); otherwise scikit-learn chooses sparse
        output when most entries are zero (classifiers accept both).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                        ("scale", StandardScaler())])
    categories = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories,
                               sparse_output=not dense)
    parts = ([("continuous", numbers, list(continuous))] if continuous else []) + \
            ([("categorical", categories, list(categorical))] if categorical else [])
    return ColumnTransformer(parts, sparse_threshold=0.0 if dense else 0.3)


def encode_for_distances(real, *others, continuous, categorical, max_categories: int = 100):
    """(real, *others) as float32 (N, D) arrays in the space fitted on ``real``."""
    encoder = make_encoder(continuous, categorical, max_categories, dense=True).fit(real)
    return tuple(np.asarray(encoder.transform(frame), np.float32) for frame in (real, *others))
