"""ppo_loss: hand-computed terms, masking (values and gradients), value clipping."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from neuroloop.training.losses import METRIC_NAMES, ppo_loss

TOLERANCE = 1e-6
CLIP = 0.2
# Four steps: ratio above, below and inside the clip range, with both advantage signs.
RATIOS = [1.5, 0.5, 1.1, 0.7]
ADVANTAGES = [1.0, 1.0, -2.0, -1.0]
NEW_VALUES = [1.0, 2.0, 0.0, 3.0]
OLD_VALUES = [0.5, 2.5, 0.5, 1.0]
RETURNS = [2.0, 2.0, 1.0, 1.0]
ENTROPY = [1.0, 2.0, 3.0, 2.0]
OLD_LOG_PROB = [-1.0, -2.0, -0.5, -1.5]

# max(-A * r, -A * clip(r)) per step: [-1.2, -0.5, 2.2, 0.8]
POLICY_LOSS = (-1.2 - 0.5 + 2.2 + 0.8) / 4
# 0.5 * mean((v - R)^2) = 0.5 * mean([1, 0, 1, 4])
VALUE_LOSS = 0.5 * 6.0 / 4
# clipped v: old + clip(new - old, +-0.2) = [0.7, 2.3, 0.3, 1.2]; squared errors
# [1.69, 0.09, 0.49, 0.04]; max with unclipped [1, 0, 1, 4] = [1.69, 0.09, 1, 4]
CLIPPED_VALUE_LOSS = 0.5 * (1.69 + 0.09 + 1.0 + 4.0) / 4
MEAN_ENTROPY = 2.0
APPROX_KL = sum((r - 1) - math.log(r) for r in RATIOS) / 4
CLIP_FRACTION = 3 / 4  # |r - 1| > 0.2 for 1.5, 0.5 and 0.7
# Normalized advantages: mean -0.25, unbiased std 1.5 -> [5/6, 5/6, -7/6, -1/2];
# max(-A * r, -A * clip(r)) = [-1, -5/12, 7.7/6, 0.4]
NORMALIZED_POLICY_LOSS = (-1.0 - 5 / 12 + 7.7 / 6 + 0.4) / 4
ENTROPY_COEF = 0.001
VALUE_COEF = 0.5


def _inputs(extra_masked_step: bool = False) -> dict[str, Any]:
    """The four hand-worked steps, optionally plus a masked step holding garbage."""
    old = np.array(OLD_LOG_PROB)
    columns: dict[str, list[float]] = {
        "new_log_prob": list(old + np.log(RATIOS)),
        "old_log_prob": OLD_LOG_PROB,
        "advantages": ADVANTAGES,
        "new_values": NEW_VALUES,
        "old_values": OLD_VALUES,
        "returns": RETURNS,
        "entropy": ENTROPY,
        "mask": [1.0] * 4,
    }
    if extra_masked_step:
        garbage = {"new_log_prob": 200.0, "advantages": 1e6, "new_values": -1e4, "entropy": 1e5}
        for name, column in columns.items():
            columns[name] = [*column, 0.0 if name == "mask" else garbage.get(name, 7.0)]
    return {name: tf.constant([column], tf.float32) for name, column in columns.items()}


def test_hand_worked_terms() -> None:
    loss, metrics = ppo_loss(**_inputs(), clip_epsilon=CLIP, normalize_advantages=False)
    assert set(metrics) == set(METRIC_NAMES)
    assert metrics["policy_loss"].numpy() == pytest.approx(POLICY_LOSS, abs=TOLERANCE)
    assert metrics["value_loss"].numpy() == pytest.approx(VALUE_LOSS, abs=TOLERANCE)
    assert metrics["entropy"].numpy() == pytest.approx(MEAN_ENTROPY, abs=TOLERANCE)
    assert metrics["approx_kl"].numpy() == pytest.approx(APPROX_KL, abs=TOLERANCE)
    assert metrics["clip_fraction"].numpy() == pytest.approx(CLIP_FRACTION, abs=TOLERANCE)
    expected = POLICY_LOSS - ENTROPY_COEF * MEAN_ENTROPY + VALUE_COEF * VALUE_LOSS
    assert loss.numpy() == pytest.approx(expected, abs=TOLERANCE)


def test_value_clipping() -> None:
    loss, metrics = ppo_loss(
        **_inputs(), clip_epsilon=CLIP, value_clip=CLIP, normalize_advantages=False
    )
    assert metrics["value_loss"].numpy() == pytest.approx(CLIPPED_VALUE_LOSS, abs=TOLERANCE)
    expected = POLICY_LOSS - ENTROPY_COEF * MEAN_ENTROPY + VALUE_COEF * CLIPPED_VALUE_LOSS
    assert loss.numpy() == pytest.approx(expected, abs=TOLERANCE)


def test_advantage_normalization() -> None:
    _, metrics = ppo_loss(**_inputs(), clip_epsilon=CLIP, normalize_advantages=True)
    assert metrics["policy_loss"].numpy() == pytest.approx(NORMALIZED_POLICY_LOSS, abs=TOLERANCE)


@pytest.mark.parametrize("normalize", [False, True])
def test_masked_steps_contribute_nothing_and_get_zero_gradient(normalize: bool) -> None:
    reference, reference_metrics = ppo_loss(**_inputs(), normalize_advantages=normalize)
    inputs = _inputs(extra_masked_step=True)
    trained = {
        name: tf.Variable(inputs[name]) for name in ("new_log_prob", "new_values", "entropy")
    }
    with tf.GradientTape() as tape:
        loss, metrics = ppo_loss(**{**inputs, **trained}, normalize_advantages=normalize)
    assert loss.numpy() == pytest.approx(reference.numpy(), abs=TOLERANCE)
    for name, value in metrics.items():
        assert value.numpy() == pytest.approx(reference_metrics[name].numpy(), abs=TOLERANCE)
    gradients = tape.gradient(loss, trained)
    for name, gradient in gradients.items():
        assert np.isfinite(gradient.numpy()).all(), name
        assert gradient.numpy()[0, -1] == 0.0, name
        assert np.any(gradient.numpy()[0, :-1] != 0.0), name


def test_value_gradient_is_known() -> None:
    inputs = _inputs()
    new_values = tf.Variable(inputs["new_values"])
    with tf.GradientTape() as tape:
        loss, _ = ppo_loss(**{**inputs, "new_values": new_values})
    # value_coef * 0.5 * mean((v - R)^2) -> d/dv = value_coef * (v - R) / n
    expected = VALUE_COEF * (np.array(NEW_VALUES) - np.array(RETURNS)) / 4
    np.testing.assert_allclose(tape.gradient(loss, new_values).numpy()[0], expected, atol=1e-7)


def test_all_masked_gives_zero_without_nan() -> None:
    inputs = {**_inputs(), "mask": tf.zeros((1, 4))}
    loss, metrics = ppo_loss(**inputs)
    assert loss.numpy() == 0.0
    assert all(value.numpy() == 0.0 for value in metrics.values())


def test_works_inside_tf_function_on_batch_time_shapes() -> None:
    rng = np.random.default_rng(0)
    shape = (3, 5)
    inputs = {name: tf.constant(rng.normal(size=shape), tf.float32) for name in _inputs()}
    inputs["mask"] = tf.constant(rng.integers(0, 2, size=shape), tf.float32)
    eager, _ = ppo_loss(**inputs, value_clip=CLIP)
    compiled, _ = tf.function(lambda kw: ppo_loss(**kw, value_clip=CLIP))(inputs)
    assert compiled.numpy() == pytest.approx(eager.numpy(), abs=TOLERANCE)


def test_invalid_arguments() -> None:
    inputs = _inputs()
    with pytest.raises(ValueError, match="`clip_epsilon` must be > 0"):
        ppo_loss(**inputs, clip_epsilon=0.0)
    with pytest.raises(ValueError, match="`value_clip` must be > 0"):
        ppo_loss(**inputs, value_clip=-1.0)
    with pytest.raises(ValueError, match="expected inputs of one shape"):
        ppo_loss(**{**inputs, "returns": tf.zeros((1, 3))})
