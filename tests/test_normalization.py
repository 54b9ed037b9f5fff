"""RunningMeanStd: exact merges, normalization, state round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuroloop.brain.normalization import RunningMeanStd

EXACT = 1e-12
EPSILON = 1e-8
SHAPE = (3,)
SPLITS = (0, 1, 17, 300, 301, 999)
"""Boundaries of uneven splits of 1000 samples (including an empty one)."""


def _data(n: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[1e3, -2.0, 0.0], scale=[5.0, 0.1, 3.0], size=(n, *SHAPE))


def test_batched_updates_equal_single_pass_statistics() -> None:
    data = _data()
    rms = RunningMeanStd(SHAPE)
    for part in np.split(data, SPLITS):
        rms.update(part)
    np.testing.assert_allclose(rms.mean, data.mean(axis=0), rtol=EXACT, atol=EXACT)
    np.testing.assert_allclose(rms.var, data.var(axis=0), rtol=EXACT, atol=EXACT)
    assert rms.count == data.shape[0]


def test_merge_of_k_splits_equals_single_pass_statistics() -> None:
    data = _data()
    parts = []
    for part in np.split(data, SPLITS):
        rms = RunningMeanStd(SHAPE)
        rms.update(part.reshape(-1, 1, *SHAPE))  # leading axes are flattened
        parts.append(rms)
    merged = RunningMeanStd(SHAPE)
    for rms in parts:
        merged.merge(rms)
    np.testing.assert_allclose(merged.mean, data.mean(axis=0), rtol=EXACT, atol=EXACT)
    np.testing.assert_allclose(merged.var, data.var(axis=0), rtol=EXACT, atol=EXACT)
    assert merged.count == data.shape[0]


def test_fresh_statistics_are_the_identity_and_normalize_clips() -> None:
    rms = RunningMeanStd(SHAPE)
    assert rms.count == 0
    x = np.array([[0.5, -1.0, 7.0]], np.float32)
    normalized = rms.normalize(x)
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized, [[0.5, -1.0, 5.0]], rtol=1e-6)

    scalars = RunningMeanStd()
    scalars.update([0.0, 2.0])  # mean 1, variance 1
    np.testing.assert_allclose(
        scalars.normalize([1.0, 3.0, 100.0, -100.0]),
        [0.0, 2.0 / np.sqrt(1.0 + EPSILON), 5.0, -5.0],
        rtol=EXACT,
    )
    np.testing.assert_allclose(scalars.normalize([-5.0], clip=3.0), [-3.0], rtol=EXACT)
    with pytest.raises(ValueError, match="clip > 0"):
        scalars.normalize([1.0], clip=0.0)


def test_state_round_trips_through_json_and_npz(tmp_path: Path) -> None:
    rms = RunningMeanStd(SHAPE)
    rms.update(_data(50))
    from_json = RunningMeanStd.from_state(json.loads(json.dumps(rms.state())))
    path = tmp_path / "rms.npz"
    np.savez(path, **rms.state())
    with np.load(path) as stored:
        from_npz = RunningMeanStd.from_state(dict(stored))
    for restored in (from_json, from_npz):
        assert restored.shape == rms.shape and restored.count == rms.count
        np.testing.assert_array_equal(restored.mean, rms.mean)
        np.testing.assert_array_equal(restored.var, rms.var)

    with pytest.raises(ValueError, match=r"missing keys \['count'\]"):
        RunningMeanStd.from_state({"shape": [3], "mean": [0, 0, 0], "var": [1, 1, 1]})
    with pytest.raises(ValueError, match=r"expected mean and var of shape \(3,\)"):
        RunningMeanStd.from_state({**rms.state(), "mean": [0.0]})


def test_shape_errors() -> None:
    rms = RunningMeanStd(SHAPE)
    with pytest.raises(ValueError, match=r"trailing shape \(3,\). Received: shape=\(4, 2\)"):
        rms.update(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="same shape"):
        rms.merge(RunningMeanStd((2,)))


# Two worlds, gamma 0.5; world 0 restarts at step 3.
