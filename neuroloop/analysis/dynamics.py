"""Low-dimensional dynamics of a recurrent state: PCA, then SINDy on the leading components.

SINDy (pysindy) fits each component's next value (discrete time, the brain's own clock) or
its derivative (continuous time) as a sparse combination of polynomial terms of the
components and of optional inputs. It is judged on held-out trajectories twice: one step
ahead from the true state, and as a free rollout from each trajectory's first state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pysindy as ps
from sklearn.decomposition import PCA
from sklearn.metrics import r2_score

SINDY_THRESHOLD = 0.02
"""STLSQ drops terms whose coefficient is smaller than this (in standardised units)."""
SINDY_DEGREE = 2
"""Highest polynomial degree of the candidate terms."""
HELD_OUT = 0.25
"""Share of trajectories kept out of the fit to score it."""
PRECISION = 3
"""Decimals of the coefficients in the printed equations."""


@dataclass(frozen=True)
class Components:
    """A PCA of stacked states: the fitted model and its explained variance."""

    pca: PCA
    explained: np.ndarray
    """Share of variance of each kept component."""

    def project(self, states: np.ndarray) -> np.ndarray:
        """``[..., units]`` -> ``[..., n_components]``."""
        flat = np.asarray(states, dtype=np.float64).reshape(-1, states.shape[-1])
        return self.pca.transform(flat).reshape(*states.shape[:-1], -1)


def principal_components(states: np.ndarray, n_components: int) -> Components:
    """PCA of ``states`` ``[N, units]`` keeping ``n_components``."""
    pca = PCA(n_components=n_components).fit(np.asarray(states, dtype=np.float64))
    return Components(pca, pca.explained_variance_ratio_.copy())


@dataclass(frozen=True)
class SindyFit:
    """A SINDy model and its held-out scores."""

    model: ps.SINDy | ps.DiscreteSINDy
    equations: list[str]
    """One identified equation per state variable."""
    coefficients: np.ndarray
    """``[n_state, n_terms]``; the terms are ``feature_names``."""
    feature_names: list[str]
    one_step_r2: float
    """R² of the one-step prediction on held-out trajectories (NaN without any)."""
    rollout_r2: float
    """R² of free rollouts from each held-out trajectory's first state (NaN without any)."""
    persistence_r2: float
    """R² of the baseline that predicts no change (``x[t+1] = x[t]``) on the same held-out
    steps: a one-step R² is worth only what it adds to this."""


def fit_sindy(
    trajectories: Sequence[np.ndarray],
    dt: float,
    discrete_time: bool,
    inputs: Sequence[np.ndarray] | None = None,
    names: Sequence[str] | None = None,
    threshold: float = SINDY_THRESHOLD,
    degree: int = SINDY_DEGREE,
    held_out: float = HELD_OUT,
    seed: int = 0,
) -> SindyFit:
    """Fit SINDy to ``trajectories`` (each ``[T, n]``) and score it on held-out ones.

    Args:
        trajectories: State trajectories, each ``[T_i, n]`` with ``T_i >= 3``.
        dt: Time between samples (s); the continuous-time derivative is taken with it.
        discrete_time: Fit ``x[t+1] = f(x[t], u[t])`` instead of ``dx/dt = f(x, u)``.
        inputs: Optional inputs ``[T_i, m]`` per trajectory (held or driving signals).
        names: Names of the state variables (default ``x0, x1, ...``), then the inputs.
        threshold: STLSQ threshold.
        degree: Polynomial degree of the library.
        held_out: Share of trajectories scored, not fitted (none if fewer than 4).
        seed: Which trajectories are held out.

    Raises:
        ValueError: If a trajectory is too short or the shapes disagree.
    """
    states = [np.asarray(x, dtype=np.float64) for x in trajectories]
    if not states or any(x.ndim != 2 or len(x) < 3 for x in states):
        raise ValueError(
            "[analysis] fit_sindy: expected trajectories of shape [T >= 3, n]. Received: "
            f"{[np.shape(x) for x in trajectories][:5]}"
        )
    controls = None if inputs is None else [np.asarray(u, dtype=np.float64) for u in inputs]
    order = np.random.default_rng(seed).permutation(len(states))
    n_test = round(held_out * len(states)) if len(states) >= 4 else 0
    test, train = order[:n_test], order[n_test:]
    n_state = states[0].shape[1]
    n_input = 0 if controls is None else controls[0].shape[1]
    feature_names = list(names) if names else [f"x{i}" for i in range(n_state)]
    feature_names += [f"u{i}" for i in range(n_input)][len(feature_names) - n_state :]
    kind = ps.DiscreteSINDy if discrete_time else ps.SINDy
    model = kind(
        optimizer=ps.STLSQ(threshold=threshold),
        feature_library=ps.PolynomialLibrary(degree=degree),
    )
    model.fit(
        [states[i] for i in train],
        t=dt,
        u=None if controls is None else [controls[i] for i in train],
        feature_names=feature_names,
    )
    held = [states[i] for i in test]
    one_step, rollout = _scores(model, held, controls, test, dt, discrete_time)
    persistence = (
        float(
            r2_score(np.concatenate([x[1:] for x in held]), np.concatenate([x[:-1] for x in held]))
        )
        if held
        else float("nan")
    )
    return SindyFit(
        model=model,
        equations=model.equations(precision=PRECISION),
        coefficients=np.asarray(model.coefficients()),
        feature_names=list(model.get_feature_names()),
        one_step_r2=one_step,
        rollout_r2=rollout,
        persistence_r2=persistence,
    )


def _scores(
    model: ps.SINDy | ps.DiscreteSINDy,
    states: list[np.ndarray],
    controls: list[np.ndarray] | None,
    indices: np.ndarray,
    dt: float,
    discrete_time: bool,
) -> tuple[float, float]:
    """Held-out one-step and rollout R² (NaN when nothing is held out)."""
    if not states:
        return float("nan"), float("nan")
    truth, predicted, rolled = [], [], []
    for x, i in zip(states, indices, strict=True):
        u = None if controls is None else controls[i]
        if discrete_time:
            # One step: x[t+1] predicted from the true x[t].
            truth.append(x[1:])
            predicted.append(model.predict(x[:-1], u=None if u is None else u[:-1]))
            rolled.append(model.simulate(x[0], t=len(x), u=u))
        else:
            # One step: the state dt later, by an Euler step of the model from the true state.
            derivative = model.predict(x, u=u)
            truth.append(x[1:])
            predicted.append(x[:-1] + dt * derivative[:-1])
            times = np.arange(len(x)) * dt
            rolled.append(model.simulate(x[0], t=times, u=u))
    target = np.concatenate(truth)
    one_step = r2_score(target, np.concatenate(predicted))
    full = np.concatenate(states)
    simulated = np.concatenate([r[: len(x)] for r, x in zip(rolled, states, strict=True)])
    rollout = (
        r2_score(full[: len(simulated)], simulated) if np.isfinite(simulated).all() else -np.inf
    )
    return float(one_step), float(rollout)
