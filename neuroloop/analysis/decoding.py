"""Cross-validated linear decoding of task variables from layer activations (scikit-learn).

Folds are split by episode (``GroupKFold``), so time steps of one episode never sit on both
sides of a split: a decoder must generalise to unseen episodes, not memorise them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FOLDS = 5
RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Regularisation strengths RidgeCV chooses among (inside each training fold)."""
MAX_ITER = 2000


@dataclass(frozen=True)
class Decoding:
    """How well a variable is decoded from a layer on held-out episodes."""

    score: float
    """Mean over folds: accuracy (labels) or R² (continuous values)."""
    std: float
    """Standard deviation of the score over folds."""
    chance: float
    """The score of a decoder that ignores the layer: the largest class's share, or 0 (R²)."""
    metric: str
    """``"accuracy"`` or ``"r2"``."""


def decode(
    activations: np.ndarray,
    target: np.ndarray,
    groups: np.ndarray,
    categorical: bool,
    folds: int = FOLDS,
) -> Decoding:
    """Decode ``target`` from ``activations`` with a linear model, cross-validated by group.

    Args:
        activations: ``[N, D]``.
        target: ``[N]`` labels (``categorical``) or ``[N]`` / ``[N, K]`` values.
        groups: ``[N]`` episode of each sample; folds never split an episode.
        categorical: Logistic regression and accuracy if true; ridge regression and R²
            (averaged over the target's columns) if false.
        folds: Number of folds (at most the number of episodes).

    Raises:
        ValueError: If there are fewer than two episodes or the shapes disagree.
    """
    x = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    y = np.asarray(target)
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2 or len(y) != len(x) or len(groups) != len(x):
        raise ValueError(
            "[analysis] decode: expected activations, target and groups of one length with "
            f"at least 2 episodes. Received: {len(x)}, {len(y)}, {len(groups)} samples, "
            f"{n_groups} episodes"
        )
    splitter = GroupKFold(n_splits=min(folds, n_groups))
    if categorical:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
        _, counts = np.unique(y, return_counts=True)
        chance, metric = float(counts.max() / counts.sum()), "accuracy"
    else:
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
        chance, metric = 0.0, "r2"
    scores = cross_val_score(model, x, y, groups=groups, cv=splitter, scoring=metric)
    return Decoding(float(scores.mean()), float(scores.std()), chance, metric)
