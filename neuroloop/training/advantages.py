"""Generalized advantage estimation (Schulman et al. 2016) on observation-aligned arrays.

Layout (time-major, ``T`` transitions, ``B`` worlds; ``...`` may stand for further batch
axes): every input holds one entry per observation, ``[T + 1, B]``.

- ``rewards[t]``: reward received on arriving at observation ``t`` (0 at an episode's first
  observation).
- ``values[t]``: the value estimate ``V(o_t)``.
- ``terminated[t]``: ``o_t`` is the final observation of an episode that ended in a
  terminal state: nothing follows, so it is not bootstrapped.
- ``truncated[t]``: ``o_t`` is the final observation of an episode cut by a limit (time,
  horizon of the task): the return continues beyond it, so it is bootstrapped from
  ``V(o_t)``.

Transition ``t`` (``t = 0 .. T-1``) goes ``o_t -> o_{t+1}`` and exists only if ``o_t`` is not
final (the next observation of that world is the first of a new episode). The last
observation ``o_T`` is bootstrapped from ``values[T]`` unless it is terminal.
"""

from __future__ import annotations

import numpy as np

DEFAULT_GAMMA = 0.99
"""Discount factor."""
DEFAULT_LAMBDA = 0.95
"""GAE's bias-variance trade-off: 0 is one-step TD, 1 is the Monte Carlo return."""
_MIN_OBSERVATIONS = 2


def _check_factor(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``0 <= value <= 1``."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"compute_gae: `{name}` must be in [0, 1]. Received: {name}={value!r}")


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    *,
    gamma: float = DEFAULT_GAMMA,
    lam: float = DEFAULT_LAMBDA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GAE advantages and value targets of every transition, masking final observations.

    For each transition ``t`` whose observation ``o_t`` is not final::

        delta_t = rewards[t+1] + gamma * (0 if terminated[t+1] else values[t+1]) - values[t]
        A_t     = delta_t + gamma * lam * (1 - final[t+1]) * A_{t+1},   A_T = 0

    with ``final = terminated | truncated``. A final ``o_t`` starts no transition: ``A_t = 0``
    and ``mask[t] = 0``. ``returns = advantages + values[:T]`` (the value targets).

    Args:
        rewards: ``[T + 1, B]`` rewards, ``rewards[t]`` received on arriving at ``o_t``.
        values: ``[T + 1, B]`` value estimates ``V(o_t)``.
        terminated: ``[T + 1, B]`` bool: ``o_t`` is terminal (no bootstrapping).
        truncated: ``[T + 1, B]`` bool: ``o_t`` is final by a limit (bootstrap from
            ``values[t]``).
        gamma: Discount factor in ``[0, 1]``.
        lam: GAE lambda in ``[0, 1]``.

    Returns:
        ``(advantages [T, B], returns [T, B], mask [T, B])`` in the floating dtype of
        ``rewards`` and ``values`` (at least float32): advantages are 0 where masked (so
        returns equal ``values[:T]`` there); mask is 1 where transition ``t`` exists.

    Raises:
        ValueError: If the shapes differ or have fewer than 2 observations, or ``gamma``
            or ``lam`` is outside ``[0, 1]``.
    """
    _check_factor("gamma", gamma)
    _check_factor("lam", lam)
    arrays = {
        "rewards": np.asarray(rewards),
        "values": np.asarray(values),
        "terminated": np.asarray(terminated),
        "truncated": np.asarray(truncated),
    }
    shape = arrays["rewards"].shape
    if any(array.shape != shape for array in arrays.values()) or not shape:
        shapes = ", ".join(f"{name}.shape={array.shape}" for name, array in arrays.items())
        raise ValueError(
            f"compute_gae: expected arrays of one shape [T + 1, B]. Received: {shapes}"
        )
    if shape[0] < _MIN_OBSERVATIONS:
        raise ValueError(
            f"compute_gae: expected at least {_MIN_OBSERVATIONS} observations (one "
            f"transition) along axis 0. Received: shape={shape}"
        )
    dtype = np.result_type(arrays["rewards"].dtype, arrays["values"].dtype, np.float32)
    reward = arrays["rewards"].astype(dtype)
    value = arrays["values"].astype(dtype)
    terminal = arrays["terminated"].astype(bool)
    final = terminal | arrays["truncated"].astype(bool)

    horizon = shape[0] - 1
    # The value each transition's target bootstraps from: 0 after a terminal observation.
    next_value = np.where(terminal[1:], 0.0, value[1:]).astype(dtype)
    deltas = reward[1:] + gamma * next_value - value[:-1]
    continues = (~final[1:]).astype(dtype)
    exists = ~final[:-1]

    advantages = np.zeros((horizon, *shape[1:]), dtype)
    running = np.zeros(shape[1:], dtype)
    for t in reversed(range(horizon)):
        running = deltas[t] + gamma * lam * continues[t] * running
        running = np.where(exists[t], running, 0.0).astype(dtype)
        advantages[t] = running
    mask = exists.astype(dtype)
    returns = advantages + value[:-1]
    return advantages, returns, mask
