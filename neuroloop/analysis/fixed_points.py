"""Fixed points of a recurrent cell under a held input.

A state ``h*`` is a fixed point of the update ``h' = F(h, u)`` at a held input ``u`` when
``F(h*, u) = h*``. Starting from many states (e.g. ones the network visited), this minimises
``q(h) = ½‖F(h, u) - h‖²`` with L-BFGS (all starts at once: the sum of independent ``q``s
has a block-diagonal Hessian, so each start converges on its own), keeps the minima where
``q`` is below a tolerance, merges those closer than ``merge_distance``, and linearises the
update there: the eigenvalues of the Jacobian ``∂F/∂h`` say whether a point attracts
(every ``|λ| < 1``, discrete time) or repels along some direction.

Also returned are the slow points (small but non-zero ``q``) that did not converge, which
the report counts but does not classify.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import tensorflow as tf

Update = Callable[[tf.Tensor], tf.Tensor]
"""The recurrent update ``[B, n] -> [B, n]`` (float64) at the held input."""

TOLERANCE = 1e-10
"""``q`` below which a minimum counts as a fixed point."""
MERGE_DISTANCE = 1e-3
"""Fixed points closer than this (Euclidean) are one."""
MAX_ITERATIONS = 2000


@dataclass(frozen=True)
class FixedPoint:
    """One fixed point and its linearisation."""

    state: np.ndarray
    """``h*`` ``[n]``."""
    speed: float
    """``q(h*)``."""
    eigenvalues: np.ndarray
    """Of ``∂F/∂h`` at ``h*``, sorted by decreasing modulus (complex)."""
    found: int
    """How many starts converged to it."""

    @property
    def stable(self) -> bool:
        """Every eigenvalue inside the unit circle: nearby states return to ``h*``."""
        return bool(np.abs(self.eigenvalues).max() < 1.0)

    @property
    def unstable_directions(self) -> int:
        """Eigenvalues outside the unit circle."""
        return int((np.abs(self.eigenvalues) > 1.0).sum())


def minimise_speed(
    update: Update, starts: np.ndarray, max_iterations: int = MAX_ITERATIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``q`` from every start: ``(minima [B, n], q at each [B])``.

    Raises:
        ValueError: If ``starts`` is not ``[B, n]``.
    """
    starts = np.asarray(starts, dtype=np.float64)
    if starts.ndim != 2 or len(starts) == 0:
        raise ValueError(
            f"[analysis] find_fixed_points: expected starts of shape [B, n]. Received: "
            f"{starts.shape}"
        )
    shape = starts.shape
    speeds_and_gradient = _speed_function(update)

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        speeds, gradient = speeds_and_gradient(tf.constant(flat.reshape(shape)))
        return float(tf.reduce_sum(speeds)), gradient.numpy().ravel()

    result = scipy.optimize.minimize(
        objective,
        starts.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "ftol": 0.0, "gtol": 1e-14},
    )
    minima = result.x.reshape(shape)
    return minima, speeds_and_gradient(tf.constant(minima))[0].numpy()


def find_fixed_points(
    update: Update,
    starts: np.ndarray,
    tolerance: float = TOLERANCE,
    merge_distance: float = MERGE_DISTANCE,
    max_iterations: int = MAX_ITERATIONS,
) -> list[FixedPoint]:
    """Fixed points of ``update`` reached from ``starts`` ``[B, n]``.

    Returns:
        The distinct fixed points, most often found first.

    Raises:
        ValueError: If ``starts`` is not ``[B, n]``.
    """
    minima, speeds = minimise_speed(update, starts, max_iterations)
    return fixed_points_among(update, minima, speeds, tolerance, merge_distance)


def fixed_points_among(
    update: Update,
    minima: np.ndarray,
    speeds: np.ndarray,
    tolerance: float = TOLERANCE,
    merge_distance: float = MERGE_DISTANCE,
) -> list[FixedPoint]:
    """The distinct fixed points among ``minima`` (``minimise_speed``), most often found
    first: those with ``q < tolerance``, merged when closer than ``merge_distance``."""
    points: list[tuple[np.ndarray, int]] = []
    for state in minima[speeds < tolerance]:
        for index, (kept, count) in enumerate(points):
            if np.linalg.norm(state - kept) < merge_distance:
                points[index] = (kept, count + 1)
                break
        else:
            points.append((state, 1))
    points.sort(key=lambda item: -item[1])
    if not points:
        return []
    states = np.stack([state for state, _ in points])
    return linearise(update, states, [count for _, count in points])


def linearise(
    update: Update, states: np.ndarray, found: list[int] | None = None
) -> list[FixedPoint]:
    """Each state ``[B, n]`` with its ``q`` and the eigenvalues of ``∂F/∂h`` there (e.g. a
    slow point where no fixed point was reached); ``found``: starts that reached each."""
    speeds = _speed_function(update)(tf.constant(states))[0].numpy()
    counts = found if found is not None else [1] * len(states)
    return [
        FixedPoint(
            state=state, speed=float(speed), eigenvalues=_sorted_eigenvalues(jacobian), found=count
        )
        for state, speed, jacobian, count in zip(
            states, speeds, _jacobians(update, states), counts, strict=True
        )
    ]


def _speed_function(update: Update) -> Any:
    """``h [B, n] -> (q [B], ∂(Σq)/∂h [B, n])``, compiled."""

    @tf.function(reduce_retracing=True)
    def speeds_and_gradient(h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(h)
            step = update(h) - h
            speeds = 0.5 * tf.reduce_sum(step * step, axis=1)
            total = tf.reduce_sum(speeds)
        return speeds, tape.gradient(total, h)

    return speeds_and_gradient


def _jacobians(update: Update, states: np.ndarray) -> np.ndarray:
    """``∂F/∂h`` at each state ``[B, n, n]``."""
    h = tf.constant(states)
    with tf.GradientTape() as tape:
        tape.watch(h)
        out = update(h)
    return tape.batch_jacobian(out, h).numpy()


def _sorted_eigenvalues(jacobian: np.ndarray) -> np.ndarray:
    eigenvalues = np.linalg.eigvals(jacobian)
    return eigenvalues[np.argsort(-np.abs(eigenvalues))]
