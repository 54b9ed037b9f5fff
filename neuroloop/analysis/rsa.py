"""Representational similarity analysis: RDMs of layers, compared with model RDMs.

A representational dissimilarity matrix (RDM) holds, for every pair of samples (time steps,
or condition means), how differently a layer responds to them. A model RDM does the same for
a task variable. Their rank correlation says how much of the layer's geometry the variable
explains: 1 for the same geometry, about 0 for an unrelated one. The maths is rsatoolbox's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import rsatoolbox
import scipy.stats

DATA_MEASURE = "correlation"
"""Dissimilarity of two activation patterns: 1 - Pearson correlation."""
COMPARISON = "spearman"
"""How two RDMs are compared: Spearman correlation of their upper triangles."""


def rdm(patterns: np.ndarray, method: str = DATA_MEASURE) -> rsatoolbox.rdm.RDMs:
    """The RDM of ``patterns`` ``[N, D]`` (one row per sample or condition).

    Raises:
        ValueError: If ``patterns`` is not 2-D with at least two rows.
    """
    patterns = np.asarray(patterns, dtype=np.float64)
    if patterns.ndim != 2 or patterns.shape[0] < 2:
        raise ValueError(
            f"[analysis] rdm: expected patterns of shape [N >= 2, D]. Received: {patterns.shape}"
        )
    with np.errstate(invalid="ignore", divide="ignore"):  # constant rows: NaN, see compare
        result = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(patterns), method=method)
    assert isinstance(result, rsatoolbox.rdm.RDMs)  # one dataset in, one RDMs out
    return result


def model_rdm(variable: np.ndarray, categorical: bool = False) -> rsatoolbox.rdm.RDMs:
    """The model RDM of a task variable ``[N]`` or ``[N, K]``.

    Continuous variables: Euclidean distance between values. Categorical ones: 0 for the
    same label, 1 for different labels.
    """
    values = np.asarray(variable)
    if categorical:
        labels = values.reshape(len(values), -1)
        differ = (labels[:, None, :] != labels[None, :, :]).any(axis=-1).astype(np.float64)
        return rsatoolbox.rdm.RDMs(differ[None], dissimilarity_measure="different label")
    numbers = values.astype(np.float64).reshape(len(values), -1)
    return rdm(numbers, method="euclidean")


def compare(first: rsatoolbox.rdm.RDMs, second: rsatoolbox.rdm.RDMs) -> float:
    """Spearman correlation of two RDMs over the pairs both define (NaN when either is
    constant there).

    A correlation distance is undefined for a constant pattern (e.g. a touch input with no
    contact); such pairs are left out instead of failing the comparison.
    """
    a, b = first.get_vectors()[0], second.get_vectors()[0]
    defined = np.isfinite(a) & np.isfinite(b)
    if defined.all():
        return float(rsatoolbox.rdm.compare(first, second, method=COMPARISON)[0, 0])
    if defined.sum() < 3:
        return float("nan")
    # The same statistic on the defined pairs (rsatoolbox needs whole triangles).
    return float(scipy.stats.spearmanr(a[defined], b[defined]).statistic)


def rsa(
    layers: Mapping[str, np.ndarray],
    variables: Mapping[str, np.ndarray],
    categorical: frozenset[str] = frozenset(),
) -> dict[str, dict[str, float]]:
    """Correlation of each layer's RDM with each variable's model RDM, on the same samples.

    Args:
        layers: ``{layer: activations [N, D]}``.
        variables: ``{variable: values [N] or [N, K]}``.
        categorical: Names of the variables that are labels.

    Returns:
        ``{layer: {variable: Spearman correlation}}``.
    """
    models = {name: model_rdm(v, name in categorical) for name, v in variables.items()}
    return {
        layer: {name: compare(rdm(patterns), model) for name, model in models.items()}
        for layer, patterns in layers.items()
    }


def condition_means(patterns: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean pattern per label: ``(sorted labels, means [n_labels, D])``."""
    conditions = np.unique(labels)
    means = np.stack([patterns[labels == label].mean(axis=0) for label in conditions])
    return conditions, means
