"""LIF-derived activations against a simulated LIF neuron, their closed form and limits."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from neuroloop.brain.activations import LIFRate, activation_layer
from neuroloop.brain.loading import build_brain

DT = 1e-5
"""Euler step of the simulated neuron (s): 0.25 % of the shortest interval simulated."""
SPIKES = 6
"""Spikes each simulated neuron must fire; the rate is measured between the first and last."""

PARAMETERS: list[dict[str, float]] = [
    {},  # the defaults: tau_m 20 ms, tau_ref 2 ms, V_th 1, V_reset 0, R 1
    {"tau_m": 0.01, "tau_ref": 0.004, "v_th": 0.8, "v_reset": -0.3, "resistance": 2.5},
]


def simulated_rates(currents: np.ndarray, parameters: dict[str, float]) -> np.ndarray:
    """Firing rates (Hz) of LIF neurons under constant currents, by forward Euler.

    ``tau_m dV/dt = -V + R I`` from rest (0); on reaching ``v_th`` a spike is recorded, ``V``
    is set to ``v_reset`` and held there for ``tau_ref``. The rate is the number of intervals
    between the first and the last of ``SPIKES`` spikes over their duration.
    """
    layer = LIFRate(**parameters)
    drive = layer.resistance * currents
    refractory_steps = round(layer.tau_ref / DT)
    v = np.zeros_like(currents)
    silent_steps = np.zeros(currents.shape, int)
    first = np.full_like(currents, np.nan)
    last = np.full_like(currents, np.nan)
    count = np.zeros(currents.shape, int)
    step = 0
    while (count < SPIKES).any():
        step += 1
        active = silent_steps == 0
        v = np.where(active, v + DT / layer.tau_m * (drive - v), v)
        silent_steps = np.where(active, 0, silent_steps - 1)
        spiking = (v >= layer.v_th) & (count < SPIKES)
        first = np.where(spiking & (count == 0), step * DT, first)
        last = np.where(spiking, step * DT, last)
        count += spiking
        v = np.where(spiking, layer.v_reset, v)
        silent_steps = np.where(spiking, refractory_steps, silent_steps)
    return (SPIKES - 1) / (last - first)


def rates(layer: LIFRate, currents: np.ndarray) -> np.ndarray:
    """The layer's output as a rate in Hz (float64 inputs, so the check is of the maths)."""
    out = layer(keras.ops.convert_to_tensor(currents, dtype="float64"))
    return np.asarray(out) / layer.amplitude


@pytest.mark.parametrize("parameters", PARAMETERS)
def test_lif_rate_matches_a_simulated_lif_neuron_within_two_percent(
    parameters: dict[str, float],
) -> None:
    layer = LIFRate(**parameters, dtype="float64")
    threshold_current = layer.v_th / layer.resistance
    # The firing range: from 2 % above the threshold current (12-22 Hz) to 10x it.
    currents = threshold_current * np.geomspace(1.02, 10.0, 12)
    expected = simulated_rates(currents, parameters)
    assert expected.min() < 25 and expected.max() > 150  # the range spans slow to fast firing
    np.testing.assert_allclose(rates(layer, currents), expected, rtol=0.02)


def test_lif_rate_is_zero_at_and_below_threshold() -> None:
    layer = LIFRate(dtype="float64")
    currents = np.array([-5.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(rates(layer, currents), 0.0)


def test_lif_rate_closed_form_at_hand_picked_currents() -> None:
    layer = LIFRate(dtype="float64")  # tau_m 0.02, tau_ref 0.002, V_th 1, V_reset 0, R 1
    currents = np.array([1.5, 2.0, 5.0, 100.0])
    expected = np.array(
        [
            1 / (0.002 + 0.02 * math.log(3.0)),  # ln(1.5 / 0.5): 41.715 Hz
            1 / (0.002 + 0.02 * math.log(2.0)),  # ln(2 / 1): 63.040 Hz
            1 / (0.002 + 0.02 * math.log(1.25)),  # ln(5 / 4): 154.73 Hz
            1 / (0.002 + 0.02 * math.log(100 / 99)),  # near 1 / tau_ref: 454.34 Hz
        ]
    )
    np.testing.assert_allclose(expected, [41.715, 63.040, 154.73, 454.34], rtol=1e-4)
    np.testing.assert_allclose(rates(layer, currents), expected, rtol=1e-12)
    other = LIFRate(
        tau_m=0.01, tau_ref=0.0, v_th=2.0, v_reset=-1.0, resistance=2.0, dtype="float64"
    )
    # R I = 4: 1 / (0.01 ln((4 + 1) / (4 - 2))) = 1 / (0.01 ln 2.5) = 109.14 Hz
    np.testing.assert_allclose(rates(other, np.array([2.0])), [109.136], rtol=1e-4)


def test_soft_lif_converges_to_lif_as_the_smoothing_shrinks() -> None:
    hard = LIFRate(dtype="float64")
    currents = np.linspace(-3.0, 6.0, 901)
    target = rates(hard, currents)
    errors = []
    for gamma in (0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4):
        smooth = rates(LIFRate(smoothing=gamma, dtype="float64"), currents)
        assert (smooth >= target - 1e-9).all()  # softplus(x) >= max(x, 0): never below
        errors.append(np.abs(smooth - target).max())
        # Largest at threshold, where the smoothed drive is gamma ln 2 and the hard rate 0.
        at_threshold = 1 / (0.002 + 0.02 * math.log1p(1 / (gamma * math.log(2))))
        assert errors[-1] <= at_threshold * (1 + 1e-9)
    assert all(b < a for a, b in itertools.pairwise(errors))
    assert errors[-1] < 0.04 * target.max()
    firing = currents > 1.05
    smallest = rates(LIFRate(smoothing=1e-4, dtype="float64"), currents)
    np.testing.assert_allclose(smallest[firing], target[firing], rtol=1e-6)


def test_soft_lif_gradients_are_finite_and_positive_everywhere() -> None:
    currents = tf.constant(
        np.concatenate([np.linspace(-1e4, 1e4, 2001), [-1e30, -100.0, 1.0, 1e30]]),
        dtype=tf.float32,
    )
    for gamma in (0.1, 1e-3):
        layer = LIFRate(smoothing=gamma)
        with tf.GradientTape() as tape:
            tape.watch(currents)
            out = layer(currents)
        gradient = tape.gradient(out, currents).numpy()
        assert np.isfinite(out.numpy()).all() and np.isfinite(gradient).all()
        assert (gradient[:2000] > 0).all()  # a silent unit still has a gradient


def test_lif_gradient_is_zero_below_threshold_and_finite_above() -> None:
    currents = tf.constant([-3.0, 0.5, 1.0, 1.5, 4.0])
    with tf.GradientTape() as tape:
        tape.watch(currents)
        out = LIFRate()(currents)
    gradient = tape.gradient(out, currents).numpy()
    np.testing.assert_array_equal(gradient[:3], 0.0)
    assert np.isfinite(gradient).all() and (gradient[3:] > 0).all()


def test_lif_layers_round_trip_through_a_saved_model(tmp_path: Path) -> None:
    inputs = keras.Input(shape=(3,))
    x = activation_layer({"name": "soft_lif", "tau_m": 0.01, "v_reset": -0.5}, name="soft")(inputs)
    model = keras.Model(inputs, activation_layer("lif", name="hard")(x))
    path = tmp_path / "lif.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("soft").get_config() == model.get_layer("soft").get_config()
    assert loaded.get_layer("soft").smoothing == 0.1 and loaded.get_layer("hard").smoothing == 0
    values = np.array([[0.0, 30.0, 200.0]], np.float32)
    np.testing.assert_allclose(loaded(values), model(values), rtol=1e-6)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lifish", "must be 'lif', 'soft_lif' or a Keras activation name"),
        ({"name": "lif", "tau_m": 0}, "`tau_m` must be a finite number > 0"),
        ({"name": "lif", "v_reset": 2.0}, "`v_reset` must be below `v_th`"),
        ({"name": "lif", "tau": 1.0}, "takes tau_m, tau_ref"),
        ({"name": "tanh", "tau_m": 1.0}, "parameters apply to ['lif', 'soft_lif'] only"),
        ({"tau_m": 1.0}, "must be a name"),
    ],
)
def test_bad_activations_name_the_problem(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        activation_layer(spec, name="x")


@pytest.mark.parametrize(
    ("name", "options", "layers"),
    [
        ("mlp", {"hidden_units": (4,)}, ("policy_dense0_lif", "value_dense0_lif")),
        ("gru", {"embedding_units": 4, "recurrent_units": 3}, ("policy_embedding_lif",)),
        ("wide", {"embedding_units": 4, "recurrent_units": 3}, ("value_embedding_lif",)),
    ],
)
def test_any_brain_takes_an_lif_activation_by_name(
    name: str, options: dict[str, Any], layers: tuple[str, ...]
) -> None:
    brain = build_brain(
        name,
        input_shapes={"proprioception": (3,), "goal": (2,)},
        action_dim=2,
        activation={"name": "lif", "tau_ref": 0.001},
        **options,
    )
    for layer_name in layers:
        layer = brain.joint.get_layer(layer_name)
        assert isinstance(layer, LIFRate) and layer.tau_ref == 0.001
    outputs = brain.joint(
        brain.select_inputs(
            brain.joint,
            {
                "proprioception": np.ones((1, 2, 3), np.float32),
                "goal": np.ones((1, 2, 2), np.float32),
                **brain.initial_state(1),
            },
        )
    )
    assert np.isfinite(np.asarray(outputs["value"])).all()
