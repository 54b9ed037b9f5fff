"""GAE: closed-form episodes, termination vs truncation, episode boundaries, masking."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.training.advantages import compute_gae

GAMMA = 0.9
REWARD = 2.0
VALUE = 0.5
N_TRANSITIONS = 5
TOLERANCE = 1e-12


def _episode(final: str) -> tuple[np.ndarray, ...]:
    """One world, one episode of N_TRANSITIONS transitions ending at the last observation.

    Args:
        final: ``"terminated"`` or ``"truncated"``: how the last observation ends it.
    """
    n_obs = N_TRANSITIONS + 1
    rewards = np.full((n_obs, 1), REWARD)
    rewards[0] = 0.0  # the first observation of an episode brings no reward
    values = np.full((n_obs, 1), VALUE)
    terminated = np.zeros((n_obs, 1), bool)
    truncated = np.zeros((n_obs, 1), bool)
    (terminated if final == "terminated" else truncated)[-1] = True
    return rewards, values, terminated, truncated


def test_lambda_one_is_the_monte_carlo_return_minus_the_value() -> None:
    advantages, returns, mask = compute_gae(*_episode("terminated"), gamma=GAMMA, lam=1.0)
    remaining = N_TRANSITIONS - np.arange(N_TRANSITIONS)
    expected = REWARD * (1 - GAMMA**remaining) / (1 - GAMMA) - VALUE
    np.testing.assert_allclose(advantages[:, 0], expected, atol=TOLERANCE)
    np.testing.assert_allclose(returns[:, 0], expected + VALUE, atol=TOLERANCE)
    np.testing.assert_array_equal(mask, np.ones((N_TRANSITIONS, 1)))


def test_lambda_zero_is_the_one_step_td_error() -> None:
    advantages, _, _ = compute_gae(*_episode("terminated"), gamma=GAMMA, lam=0.0)
    expected = np.full(N_TRANSITIONS, REWARD + GAMMA * VALUE - VALUE)
    expected[-1] = REWARD - VALUE  # the terminal observation is not bootstrapped
    np.testing.assert_allclose(advantages[:, 0], expected, atol=TOLERANCE)


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_truncation_differs_from_termination_by_the_bootstrap_term(lam: float) -> None:
    terminal, _, _ = compute_gae(*_episode("terminated"), gamma=GAMMA, lam=lam)
    truncated, _, _ = compute_gae(*_episode("truncated"), gamma=GAMMA, lam=lam)
    steps_to_end = N_TRANSITIONS - 1 - np.arange(N_TRANSITIONS)
    bootstrap = (GAMMA * lam) ** steps_to_end * GAMMA * VALUE
    np.testing.assert_allclose(truncated - terminal, bootstrap[:, None], atol=TOLERANCE)


def test_two_episodes_in_one_row_and_the_mask() -> None:
    # o_0 o_1 o_2 | o_3 o_4 o_5 o_6: episode A terminates at o_2, B runs past the horizon.
    r = np.array([0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 5.0])
    v = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    terminated = np.array([0, 0, 1, 0, 0, 0, 0], bool)
    truncated = np.zeros(7, bool)
    g = GAMMA
    expected = np.array(
        [
            r[1] + g * r[2] - v[0],
            r[2] - v[1],
            0.0,
            r[4] + g * r[5] + g**2 * r[6] + g**3 * v[6] - v[3],
            r[5] + g * r[6] + g**2 * v[6] - v[4],
            r[6] + g * v[6] - v[5],
        ]
    )
    args = [array[:, np.newaxis].copy() for array in (r, v, terminated, truncated)]
    advantages, returns, mask = compute_gae(*args, gamma=GAMMA, lam=1.0)
    np.testing.assert_allclose(advantages[:, 0], expected, atol=TOLERANCE)
    np.testing.assert_array_equal(mask[:, 0], [1, 1, 0, 1, 1, 1])
    np.testing.assert_allclose(returns[:, 0], expected + v[:-1], atol=TOLERANCE)

    # Nothing flows across the boundary: the terminal value and the reset reward are unused.
    args[1][2], args[0][3] = 100.0, -100.0
    changed, _, _ = compute_gae(*args, gamma=GAMMA, lam=1.0)
    np.testing.assert_allclose(changed, advantages, atol=TOLERANCE)


def test_worlds_are_independent_columns() -> None:
    term = _episode("terminated")
    trunc = _episode("truncated")
    both = [np.concatenate([a, b], axis=1) for a, b in zip(term, trunc, strict=True)]
    advantages, _, _ = compute_gae(*both, gamma=GAMMA, lam=0.95)
    np.testing.assert_allclose(
        advantages[:, :1], compute_gae(*term, gamma=GAMMA, lam=0.95)[0], atol=TOLERANCE
    )
    np.testing.assert_allclose(
        advantages[:, 1:], compute_gae(*trunc, gamma=GAMMA, lam=0.95)[0], atol=TOLERANCE
    )


def test_float32_inputs_give_float32_outputs() -> None:
    rewards, values, terminated, truncated = _episode("terminated")
    outputs = compute_gae(
        rewards.astype(np.float32), values.astype(np.float32), terminated, truncated
    )
    assert all(output.dtype == np.float32 for output in outputs)


def test_invalid_inputs() -> None:
    rewards, values, terminated, truncated = _episode("terminated")
    with pytest.raises(ValueError, match=r"one shape \[T \+ 1, B\]"):
        compute_gae(rewards, values[1:], terminated, truncated)
    with pytest.raises(ValueError, match="at least 2 observations"):
        compute_gae(rewards[:1], values[:1], terminated[:1], truncated[:1])
    with pytest.raises(ValueError, match="`lam` must be in"):
        compute_gae(rewards, values, terminated, truncated, lam=1.5)
