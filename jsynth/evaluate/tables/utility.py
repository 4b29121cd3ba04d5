"""Machine-learning utility of a synthetic table: train on synthetic, test on real (TSTR).

The CTGAN paper's protocol for binary classification tables (Xu et al. 2019, after SDGym): four
scikit-learn classifiers, each trained once on the synthetic table (TSTR) and once on the real
training table (TRTR), every one tested on the real holdout:

* ``decision_tree``: ``DecisionTreeClassifier(max_depth=20)``
* ``adaboost``: ``AdaBoostClassifier(n_estimators=50)``
* ``logistic_regression``: ``LogisticRegression(class_weight="balanced", max_iter=50)`` (lbfgs)
* ``mlp``: ``MLPClassifier(hidden_layer_sizes=(50,), max_iter=50)``

on the features of ``encoding.make_encoder`` (fitted on each classifier's own training table, so a
TSTR classifier never sees a real row). Scores: accuracy, and F1 of the positive class for a binary
target, where the positive class is the rarer class of the real training table (">50K" on adult, as
in the paper), macro F1 for more classes. The reported ``tstr_*`` and ``trtr_*`` are the means over
the four classifiers, and ``utility_ratio = tstr_f1 / trtr_f1``. Rows whose target is missing are
left out. A synthetic table with one class only trains nothing: every TSTR classifier predicts
that class (a warning says so).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from jsynth.evaluate.tables.encoding import make_encoder
from jsynth.evaluate.tables.frames import MISSING


def _classifiers(seed: int) -> dict:
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import DecisionTreeClassifier

    return {
        "decision_tree": DecisionTreeClassifier(max_depth=20, random_state=seed),
        "adaboost": AdaBoostClassifier(n_estimators=50, random_state=seed),
        "logistic_regression": LogisticRegression(class_weight="balanced", max_iter=50),
        "mlp": MLPClassifier(hidden_layer_sizes=(50,), max_iter=50, random_state=seed),
    }


CLASSIFIER_NAMES = ("decision_tree", "adaboost", "logistic_regression", "mlp")
PROTOCOL = ("CTGAN paper (SDGym): decision_tree max_depth=20, adaboost 50, logistic_regression balanced "
            "max_iter=50, mlp (50,) max_iter=50; mean over the four; F1 of the real training table's rarer "
            "class (binary) or macro F1")


def _scores(y_true, y_pred, positive) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    accuracy = float(np.mean(y_true == y_pred))
    if positive is not None:
        f1 = f1_score(y_true, y_pred, pos_label=positive, average="binary", zero_division=0.0)
    else:
        f1 = f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0.0)
    return float(f1), accuracy


def _fit_predict(model, train: pd.DataFrame, target: str, test_x: pd.DataFrame, continuous, categorical,
                 max_categories: int) -> np.ndarray:
    from sklearn.pipeline import Pipeline

    y = train[target].to_numpy()
    if np.unique(y).size < 2:  # nothing to learn: the only class, everywhere
        return np.full(len(test_x), y[0], dtype=object)
    pipeline = Pipeline([("encode", make_encoder(continuous, categorical, max_categories)), ("model", model)])
    with warnings.catch_warnings():  # max_iter=50 is the protocol; its ConvergenceWarning is expected
        warnings.simplefilter("ignore")
        pipeline.fit(train.drop(columns=[target]), y)
        return pipeline.predict(test_x)


def utility(synthetic: pd.DataFrame, real: pd.DataFrame, holdout: pd.DataFrame, target: str, continuous,
            categorical, *, max_categories: int = 100, seed: int = 0) -> tuple[dict, list[str]]:
    """TSTR and TRTR scores of aligned tables (``frames.align``) and any warnings.

    Returns:
      ({"tstr_f1", "tstr_accuracy", "trtr_f1", "trtr_accuracy", "utility_ratio",
        "utility_by_classifier": {name: {the four scores}}, "utility_positive_class"}, warnings)
    """
    keep = lambda frame: frame[frame[target] != MISSING].reset_index(drop=True)  # noqa: E731
    synthetic, real, holdout = keep(synthetic), keep(real), keep(holdout)
    notes = []
    if len(synthetic) == 0:
        notes.append(f"every synthetic row's {target!r} is missing: the TSTR scores are 0")
    features = [c for c in categorical if c != target]
    classes = real[target].value_counts()
    positive = str(classes.index[-1]) if len(classes) == 2 else None  # the rarer class
    test_x, test_y = holdout.drop(columns=[target]), holdout[target].to_numpy()
    per_classifier = {}
    for name, model in _classifiers(seed).items():
        row = {}
        for prefix, train in (("tstr", synthetic), ("trtr", real)):
            if len(train) == 0:
                row[f"{prefix}_f1"], row[f"{prefix}_accuracy"] = 0.0, 0.0
                continue
            predicted = _fit_predict(model, train, target, test_x, continuous, features, max_categories)
            row[f"{prefix}_f1"], row[f"{prefix}_accuracy"] = _scores(test_y, predicted, positive)
        per_classifier[name] = row
    if len(synthetic) and synthetic[target].nunique() < 2:
        notes.append(f"the synthetic table has one class of {target!r} only ({synthetic[target].iloc[0]!r}): "
                     "every TSTR classifier predicts it")
    result = {key: float(np.mean([row[key] for row in per_classifier.values()]))
              for key in ("tstr_f1", "tstr_accuracy", "trtr_f1", "trtr_accuracy")}
    result["utility_ratio"] = result["tstr_f1"] / result["trtr_f1"] if result["trtr_f1"] > 0 else float("nan")
    result["utility_by_classifier"] = per_classifier
    result["utility_positive_class"] = positive
    return result, notes
