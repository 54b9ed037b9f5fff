"""RunningMeanStd and RewardScaler: exact merges, normalization, state round trips."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from neuroloop.training.normalization import RewardScaler, RunningMeanStd

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
GAMMA = 0.5
REWARDS = np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 0.0], [0.0, 4.0]])
STARTS = np.array([[True, True], [False, False], [False, False], [True, False]])
# Discounted returns per step (not counted at episode starts) and the statistics after it:
# step 1: {1, 2}                  -> var 0.25
# step 2: {1, 2, 1.5, 1}          -> mean 1.375, var 0.171875
# step 3: {1, 2, 1.5, 1, 4.5}     -> mean 2, var 1.7
SCALED = np.array(
    [
        [0.0, 0.0],
        [1.0 / np.sqrt(0.25 + EPSILON), 2.0 / np.sqrt(0.25 + EPSILON)],
        [1.0 / np.sqrt(0.171875 + EPSILON), 0.0],
        [0.0, 4.0 / np.sqrt(1.7 + EPSILON)],
    ]
)


def test_reward_scaler_on_a_known_sequence() -> None:
    scaler = RewardScaler(2, gamma=GAMMA)
    np.testing.assert_allclose(scaler.scale(REWARDS, STARTS), SCALED, rtol=EXACT)
    np.testing.assert_allclose(scaler.returns, [0.0, 4.5], rtol=EXACT)
    assert scaler.return_rms.count == 5
    np.testing.assert_allclose(scaler.return_rms.var, 1.7, rtol=EXACT)

    clipped = RewardScaler(2, gamma=GAMMA, clip=3.0).scale(REWARDS, STARTS)
    np.testing.assert_allclose(clipped, np.clip(SCALED, -3.0, 3.0), rtol=EXACT)


def test_reward_scalers_merge_and_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=(20, 4))
    starts = rng.uniform(size=(20, 4)) < 0.2
    single = RewardScaler(4, gamma=0.9)
    single.scale(rewards, starts)
    left, right = RewardScaler(2, gamma=0.9), RewardScaler(2, gamma=0.9)
    left.scale(rewards[:, :2], starts[:, :2])
    right.scale(rewards[:, 2:], starts[:, 2:])
    left.merge(right)
    assert left.return_rms.count == single.return_rms.count
    np.testing.assert_allclose(left.return_rms.mean, single.return_rms.mean, atol=EXACT)
    np.testing.assert_allclose(left.return_rms.var, single.return_rms.var, rtol=EXACT)

    path = tmp_path / "scaler.npz"
    np.savez(path, **single.state())
    with np.load(path) as stored:
        from_npz = RewardScaler.from_state(dict(stored))
    from_json = RewardScaler.from_state(json.loads(json.dumps(single.state())))
    expected_next = copy.deepcopy(single).step(rewards[0], starts[0])
    for restored in (from_npz, from_json):
        np.testing.assert_array_equal(restored.returns, single.returns)
        assert restored.state() == single.state()
        np.testing.assert_array_equal(restored.step(rewards[0], starts[0]), expected_next)

    with pytest.raises(ValueError, match="same gamma"):
        left.merge(RewardScaler(2, gamma=0.5))
    with pytest.raises(ValueError, match=r"expected rewards and episode_start of shape \(4,\)"):
        single.step(rewards[0, :2], starts[0, :2])
