"""Actions of each distribution: actuator targets inside the control range, action spaces."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from neuroloop.brain.actions import (
    DEFAULT_N_BINS,
    BetaActions,
    BinnedActions,
    GaussianActions,
    get_actions,
)

BETA = BetaActions()
GAUSSIAN = GaussianActions()

# The Shadow Hand's first four actuator ranges, with awkward decimals on purpose.
CTRLRANGE = np.array([[-0.489, 0.14], [-0.698, 0.489], [0.0, 1.571], [-1.571, 0.0]])
LOW, HIGH = CTRLRANGE.T


def test_beta_is_exact_at_the_bounds_and_linear_between() -> None:
    np.testing.assert_array_equal(BETA.to_control(np.zeros((2, 4)), CTRLRANGE), [LOW, LOW])
    np.testing.assert_array_equal(BETA.to_control(np.ones((2, 4)), CTRLRANGE), [HIGH, HIGH])
    np.testing.assert_allclose(BETA.to_control(np.full(4, 0.5), CTRLRANGE), (LOW + HIGH) / 2)
    np.testing.assert_allclose(
        BETA.to_control(np.full(4, 0.25), CTRLRANGE), LOW + 0.25 * (HIGH - LOW)
    )


def test_beta_rounding_overshoot_is_clipped() -> None:
    sample = np.array([1.0 + 1e-12, -1e-12, 0.0, 1.0])
    ctrl = BETA.to_control(sample, CTRLRANGE)
    np.testing.assert_array_equal(ctrl, [HIGH[0], LOW[1], LOW[2], HIGH[3]])


def test_gaussian_is_clipped_to_the_range() -> None:
    sample = np.array([[-10.0, 0.1, 2.0, -0.5]])
    np.testing.assert_array_equal(
        GAUSSIAN.to_control(sample, CTRLRANGE), [[LOW[0], 0.1, HIGH[2], -0.5]]
    )


def test_bins_map_to_bin_centres() -> None:
    k = 5
    width = (HIGH - LOW) / k
    for b in range(k):
        ctrl = BinnedActions(k).to_control(np.full((1, 4), b), CTRLRANGE)
        np.testing.assert_allclose(ctrl[0], LOW + (b + 0.5) * width, rtol=0, atol=1e-15)
    # Two bins: the centres sit at a quarter and three quarters of the range.
    np.testing.assert_allclose(
        BinnedActions(2).to_control(np.array([0, 1, 0, 1]), CTRLRANGE),
        [LOW[0] + 0.25 * (HIGH[0] - LOW[0]), LOW[1] + 0.75 * (HIGH[1] - LOW[1]), 0.39275, -0.39275],
    )
    # One bin: the middle of the range.
    np.testing.assert_allclose(
        BinnedActions(1).to_control(np.zeros(4, int), CTRLRANGE), (LOW + HIGH) / 2
    )


@pytest.mark.parametrize("bins", [np.array([0, 1, 2, 3]), np.array([-1, 0, 0, 0])])
def test_bins_out_of_range_are_rejected(bins: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"bin indices in \[0, 2\]"):
        BinnedActions(3).to_control(bins, CTRLRANGE)


def test_fractional_bins_are_rejected() -> None:
    with pytest.raises(ValueError, match="integer bin indices"):
        BinnedActions(3).to_control(np.array([0.5, 0.0, 0.0, 0.0]), CTRLRANGE)


def test_get_actions_dispatches_and_checks() -> None:
    np.testing.assert_array_equal(get_actions("beta").to_control(np.ones(4), CTRLRANGE), HIGH)
    gaussian = get_actions("gaussian")
    np.testing.assert_array_equal(gaussian.to_control(np.full(4, -9.0), CTRLRANGE), LOW)
    one_bin = get_actions("multicategorical", {"n_bins": 1})
    np.testing.assert_allclose(one_bin.to_control(np.zeros(4, int), CTRLRANGE), (LOW + HIGH) / 2)
    with pytest.raises(ValueError, match="n_bins"):
        get_actions("multicategorical", {"n_bins": 0})
    with pytest.raises(ValueError, match=r"Unknown distribution.*Received: 'poisson'"):
        get_actions("poisson")


def test_samples_must_match_the_actuators_and_be_finite() -> None:
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 4\].*Received: shape \(2, 3\)"):
        BETA.to_control(np.zeros((2, 3)), CTRLRANGE)
    with pytest.raises(ValueError, match="finite"):
        GAUSSIAN.to_control(np.array([np.nan, 0, 0, 0]), CTRLRANGE)


def test_spaces_hold_what_each_distribution_samples() -> None:
    assert get_actions("beta").space(3) == gymnasium.spaces.Box(0.0, 1.0, (3,), np.float32)
    assert get_actions("gaussian").space(2) == gymnasium.spaces.Box(
        -np.inf, np.inf, (2,), np.float32
    )
    binned = get_actions("multicategorical").space(4)
    assert isinstance(binned, gymnasium.spaces.MultiDiscrete)
    np.testing.assert_array_equal(binned.nvec, [DEFAULT_N_BINS] * 4)
