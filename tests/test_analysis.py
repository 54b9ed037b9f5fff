"""neuroloop.analysis on ground truths the tests construct."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import tensorflow as tf

from neuroloop.analysis.decoding import decode
from neuroloop.analysis.dynamics import fit_sindy, principal_components
from neuroloop.analysis.fixed_points import find_fixed_points
from neuroloop.analysis.rsa import compare, model_rdm, rdm, rsa
from neuroloop.recording import StepRecorder
from tests.processes import run_neuroloop as neuroloop

RNG = np.random.default_rng(0)


def test_rsa_of_identical_representations_is_one_and_of_shuffled_ones_near_zero() -> None:
    patterns = RNG.normal(size=(60, 16))
    assert compare(rdm(patterns), rdm(patterns)) == pytest.approx(1.0)
    # Shuffling the samples of one side breaks the pairing: the correlation is chance,
    # whose spread for 60 samples (1770 pairs, not independent) is about 1/sqrt(60).
    shuffled = [compare(rdm(patterns), rdm(patterns[RNG.permutation(60)])) for _ in range(10)]
    assert abs(np.mean(shuffled)) < 0.05
    assert max(abs(s) for s in shuffled) < 0.25


def test_rsa_finds_the_variable_a_layer_encodes() -> None:
    # Layer "a" is a noisy linear image of the variable; layer "b" is unrelated noise.
    variable = RNG.uniform(-1, 1, size=(80, 2))
    layers = {
        "a": variable @ RNG.normal(size=(2, 12)) + 0.05 * RNG.normal(size=(80, 12)),
        "b": RNG.normal(size=(80, 12)),
    }
    labels = (variable[:, 0] > 0).astype(int)
    result = rsa(layers, {"v": variable, "sign": labels}, categorical=frozenset({"sign"}))
    assert result["a"]["v"] > 0.5
    assert abs(result["b"]["v"]) < 0.1
    assert result["a"]["sign"] > result["b"]["sign"] + 0.2
    same = model_rdm(labels, categorical=True).get_matrices()[0]
    assert same[labels == 0][:, labels == 0].max() == 0.0
    assert same[labels == 0][:, labels == 1].min() == 1.0


def test_decoding_finds_a_planted_variable_and_not_an_absent_one() -> None:
    episodes, steps, units = 40, 10, 24
    finger = RNG.integers(0, 4, size=episodes)  # one label per episode
    directions = RNG.normal(size=(4, units))
    activations = RNG.normal(size=(episodes, steps, units)) + directions[finger][:, None, :]
    x = activations.reshape(-1, units)
    labels = np.repeat(finger, steps)
    groups = np.repeat(np.arange(episodes), steps)
    planted = decode(x, labels, groups, categorical=True)
    assert planted.metric == "accuracy"
    assert planted.score > 0.95
    assert planted.chance == pytest.approx(np.bincount(finger).max() / episodes)
    absent = decode(x, np.repeat(RNG.integers(0, 4, size=episodes), steps), groups, True)
    assert absent.score < 0.5
    # A continuous variable: a linear read-out of the layer plus small noise.
    value = x @ RNG.normal(size=units) + 0.1 * RNG.normal(size=len(x))
    assert decode(x, value, groups, categorical=False).score > 0.95


def _oscillator(t: float, state: np.ndarray) -> np.ndarray:
    # The damped oscillator the test identifies: x' = -0.1 x + 2 y, y' = -2 x - 0.1 y.
    x, y = state
    return np.array([-0.1 * x + 2.0 * y, -2.0 * x - 0.1 * y])


def test_sindy_recovers_a_damped_oscillator_within_five_percent() -> None:
    dt = 0.01
    times = np.arange(0, 10, dt)
    trajectories = [
        scipy.integrate.solve_ivp(
            _oscillator, (0, times[-1]), start, t_eval=times, rtol=1e-10, atol=1e-10
        ).y.T
        for start in RNG.uniform(-2, 2, size=(8, 2))
    ]
    fit = fit_sindy(trajectories, dt, discrete_time=False, names=["x", "y"], threshold=0.05)
    terms = fit.feature_names
    expected = np.zeros_like(fit.coefficients)
    expected[0, terms.index("x")], expected[0, terms.index("y")] = -0.1, 2.0
    expected[1, terms.index("x")], expected[1, terms.index("y")] = -2.0, -0.1
    nonzero = expected != 0
    assert np.all(np.abs(fit.coefficients[nonzero] / expected[nonzero] - 1) < 0.05)
    assert np.all(fit.coefficients[~nonzero] == 0)
    assert fit.one_step_r2 > 0.99
    assert fit.rollout_r2 > 0.95


def test_sindy_in_discrete_time_recovers_a_linear_map() -> None:
    # x[t+1] = A x[t] with A a damped rotation: the map the fit must return.
    angle, radius = 0.3, 0.95
    a = radius * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    trajectories = []
    for start in RNG.uniform(-1, 1, size=(8, 2)):
        states = [start]
        for _ in range(40):
            states.append(a @ states[-1])
        trajectories.append(np.array(states))
    fit = fit_sindy(trajectories, 1.0, discrete_time=True, degree=1, threshold=0.01)
    linear = fit.coefficients[:, [fit.feature_names.index("x0"), fit.feature_names.index("x1")]]
    np.testing.assert_allclose(linear, a, rtol=0.01)
    assert fit.rollout_r2 > 0.99


def test_principal_components_find_a_planted_plane() -> None:
    plane = RNG.normal(size=(500, 2)) @ RNG.normal(size=(2, 10))
    components = principal_components(plane + 1e-3 * RNG.normal(size=(500, 10)), 3)
    assert components.explained[:2].sum() > 0.999
    assert components.project(plane[:7]).shape == (7, 3)


RECURRENT_GAIN = 2.0
"""Recurrent weight of unit 1 of the hand-built cell: > 1, so it has two stable states."""
LEAK_GAIN = 0.5
"""Recurrent weight of unit 2: < 1, so it decays to 0."""


def test_fixed_points_of_a_hand_built_two_unit_cell() -> None:
    # h' = tanh(W h + V u) with W = diag(2, 0.5) and u = 0 held. Unit 2 has the one fixed
    # point 0 (slope 0.5). Unit 1's fixed points solve h = tanh(2 h): 0 and ±h*, h* > 0.
    # The Jacobian at (h1, 0) is diag(2 (1 - h1²), 0.5): at the origin eigenvalues 2 and
    # 0.5 (a saddle: unstable), at (±h*, 0) 2 (1 - h*²) < 1 and 0.5 (stable).
    cell = keras.layers.SimpleRNNCell(2, use_bias=False, dtype="float64")
    cell.build((None, 1))
    cell.set_weights([np.ones((1, 2)), np.diag([RECURRENT_GAIN, LEAK_GAIN])])
    held = tf.zeros((1, 1), dtype=tf.float64)

    def update(h: tf.Tensor) -> tf.Tensor:
        return cell(tf.repeat(held, tf.shape(h)[0], axis=0), [h])[0]

    h_star = scipy.optimize.brentq(lambda h: np.tanh(RECURRENT_GAIN * h) - h, 0.5, 1.0)
    starts = np.random.default_rng(1).uniform(-1.5, 1.5, size=(64, 2))
    starts[0] = [1e-3, 0.3]  # near the saddle's stable manifold, so it is found too
    points = find_fixed_points(update, starts)
    found = sorted(points, key=lambda p: p.state[0])
    assert len(found) == 3
    np.testing.assert_allclose(
        [p.state for p in found], [[-h_star, 0], [0, 0], [h_star, 0]], atol=1e-6
    )
    assert [p.stable for p in found] == [True, False, True]
    assert found[1].unstable_directions == 1
    np.testing.assert_allclose(np.abs(found[1].eigenvalues), [RECURRENT_GAIN, LEAK_GAIN])
    stable_slope = RECURRENT_GAIN * (1 - h_star**2)
    for point in (found[0], found[2]):
        np.testing.assert_allclose(
            np.sort(np.abs(point.eigenvalues)), sorted([stable_slope, LEAK_GAIN]), atol=1e-6
        )


def _planted_recording(path: Path) -> None:
    """Episodes of a made-up brain: layer ``tuned`` encodes the condition, ``noise`` does
    not, and the recurrent state turns by a fixed damped rotation (its SINDy ground truth)."""
    rng = np.random.default_rng(3)
    episodes, steps = 24, 20
    condition = rng.integers(0, 3, size=episodes)
    directions = rng.normal(size=(3, 6))
    angle, radius = 0.3, 0.97
    rotation = radius * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    with StepRecorder(path) as recorder:
        state = np.zeros((steps, episodes, 2))
        state[0] = rng.uniform(-1, 1, size=(episodes, 2))
        for t in range(1, steps):
            state[t] = state[t - 1] @ rotation.T
        labels = np.broadcast_to(condition, (steps, episodes))
        recorder.add(
            {
                "input/goal": rng.normal(size=(steps, episodes, 3)),
                "layer/tuned": directions[labels] + 0.3 * rng.normal(size=(steps, episodes, 6)),
                "layer/noise": rng.normal(size=(steps, episodes, 6)),
                "state/policy_state_h": state,
                "task/target_finger": labels,
            },
            np.zeros((steps, episodes), dtype=bool),
        )
        recorder.meta("control_step_s", np.array(0.04))


def test_analyze_writes_a_report_that_finds_what_was_planted(tmp_path: Path) -> None:
    recording = tmp_path / "planted.npz"
    _planted_recording(recording)
    result = neuroloop("analyze", recording, "-o", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    assert "decoding     target_finger: best layer/tuned accuracy 1.000" in result.stdout
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    decoding = metrics["decoding"]
    assert decoding["layer/tuned"]["target_finger"]["score"] == 1.0
    assert decoding["layer/noise"]["target_finger"]["score"] < 0.6
    assert metrics["rsa"]["layer/tuned"]["target_finger"] > 0.5
    assert abs(metrics["rsa"]["layer/noise"]["target_finger"]) < 0.1
    assert metrics["sindy"]["rollout_r2"] > 0.95
    page = (tmp_path / "report" / "report.html").read_text()
    for title in ("Representational similarity", "Decoding", "PCA", "SINDy", "Fixed points"):
        assert f"<h2>{title}" in page, title
    assert page.count('<img src="data:image/png;base64,') >= 4
