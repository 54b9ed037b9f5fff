"""Brain builders: input names, output shapes, stateful stepping, save/load, errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from neuroloop.brain.contract import Brain
from neuroloop.brain.distributions import GaussianDistribution
from neuroloop.brain.layers import RunningNormalization
from neuroloop.brain.loading import build_brain, known_brains
from neuroloop.brain.normalization import (
    NORMALIZATION_CLIP,
    NORMALIZATION_EPSILON,
    RunningMeanStd,
)
from neuroloop.brain.weights import assign_flat_weights, flat_weights
from neuroloop.sensation import Sensation

BATCH = 3
TIME = 4
ACTION_DIM = 2
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "proprioception": (5,),
    "goal": (3,),
    "asymmetric": (4,),
}
VISION_SHAPES: dict[str, tuple[int, ...]] = {"vision": (8, 8, 3), "touch": (6,), "asymmetric": (2,)}
TINY: dict[str, dict[str, Any]] = {
    "mlp": {"hidden_units": (8, 8)},
    "lstm": {"embedding_units": 8, "recurrent_units": 6},
    "gru": {"embedding_units": 8, "recurrent_units": 6},
    "wide": {"embedding_units": 8, "recurrent_units": 6},
}
RECURRENT = ("lstm", "gru", "wide")
TOLERANCE = 1e-5


def _tiny(name: str, distribution: Any = "beta", **kwargs: Any) -> Brain:
    shapes = kwargs.pop("input_shapes", INPUT_SHAPES)
    return build_brain(
        name,
        input_shapes=shapes,
        action_dim=ACTION_DIM,
        distribution=distribution,
        **TINY[name],
        **kwargs,
    )


def _values(brain: Brain, shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    values: dict[str, Any] = {
        name: rng.normal(size=(BATCH, TIME, *shape)).astype(np.float32)
        for name, shape in shapes.items()
    }
    for name, state in brain.initial_state(BATCH).items():
        values[name] = rng.normal(size=state.shape).astype(np.float32)
    return values


def test_known_brains() -> None:
    assert set(known_brains()) >= {"mlp", "lstm", "gru", "wide"}


@pytest.mark.parametrize("distribution", ["beta", "gaussian", "multicategorical"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_brain_inputs_and_output_shapes(name: str, distribution: str) -> None:
    brain = _tiny(name, distribution)
    assert brain.policy_modalities == ("proprioception", "goal")
    assert brain.value_modalities == ("proprioception", "goal", "asymmetric")
    assert {t.name for t in brain.policy.inputs} == {"proprioception", "goal"} | set(
        brain.policy_state_names
    )
    assert {t.name for t in brain.value.inputs} == set(INPUT_SHAPES) | set(brain.value_state_names)
    assert brain.is_recurrent == (name in RECURRENT)

    out = brain.joint(brain.select_inputs(brain.joint, _values(brain, INPUT_SHAPES)))
    dist = brain.distribution
    assert set(out) == set(dist.param_names) | {"value"} | set(brain.state_names)
    for key, shape in dist.param_shapes.items():
        assert out[key].shape == (BATCH, TIME, *shape)
    assert out["value"].shape == (BATCH, TIME, 1)
    for key, size in {**brain.policy_state_sizes, **brain.value_state_sizes}.items():
        assert size == TINY[name]["recurrent_units"]
        assert out[key].shape == (BATCH, size)
    actions = dist.sample(out, seed=0)
    assert actions.shape == (BATCH, TIME, ACTION_DIM)
    assert dist.log_prob(out, actions).shape == (BATCH, TIME)


@pytest.mark.parametrize("name", sorted(TINY))
def test_policy_and_value_share_layers_with_joint(name: str) -> None:
    brain = _tiny(name, "gaussian")
    values = _values(brain, INPUT_SHAPES)
    joint = brain.joint(brain.select_inputs(brain.joint, values))
    policy = brain.policy(brain.select_inputs(brain.policy, values))
    value = brain.value(brain.select_inputs(brain.value, values))
    for key, tensor in {**policy, **value}.items():
        np.testing.assert_allclose(tensor, joint[key], atol=TOLERANCE)
    assert len(brain.joint.trainable_weights) == len(brain.policy.trainable_weights) + len(
        brain.value.trainable_weights
    )


@pytest.mark.parametrize("name", RECURRENT)
def test_stepping_with_carried_state_equals_whole_sequence(name: str) -> None:
    brain = _tiny(name)
    values = _values(brain, INPUT_SHAPES, seed=1)
    whole = brain.joint(brain.select_inputs(brain.joint, values))

    state = {key: values[key] for key in brain.state_names}
    steps: dict[str, list[np.ndarray]] = {"alpha": [], "beta": [], "value": []}
    for t in range(TIME):
        step_values = {key: values[key][:, t : t + 1] for key in INPUT_SHAPES}
        out = brain.joint(brain.select_inputs(brain.joint, {**step_values, **state}))
        state = {key: out[key] for key in brain.state_names}
        for key, collected in steps.items():
            collected.append(out[key])

    for key, collected in steps.items():
        np.testing.assert_allclose(np.concatenate(collected, axis=1), whole[key], atol=TOLERANCE)
    for key in brain.state_names:
        np.testing.assert_allclose(state[key], whole[key], atol=TOLERANCE)


def test_reset_state_zeroes_finished_worlds() -> None:
    brain = _tiny("lstm")
    state = {key: np.ones_like(value) for key, value in brain.initial_state(BATCH).items()}
    reset = brain.reset_state(state, np.array([False, True, False]))
    for value in reset.values():
        np.testing.assert_array_equal(value[:, 0], [1.0, 0.0, 1.0])


def test_brain_with_vision_steps_a_sensation() -> None:
    brain = _tiny("gru", "multicategorical", input_shapes=VISION_SHAPES)
    assert brain.policy_modalities == ("vision", "touch")
    rng = np.random.default_rng(2)
    sensation = Sensation.from_values(
        {name: rng.uniform(size=(BATCH, *shape)) for name, shape in VISION_SHAPES.items()}
    )
    inputs = sensation.as_inputs(brain.policy_modalities)
    out = brain.policy({**inputs, **brain.initial_state(BATCH, brain.policy_state_names)})
    assert out["logits"].shape == (BATCH, 1, *brain.distribution.param_shapes["logits"])
    mode = brain.distribution.mode(out)
    assert mode.shape == (BATCH, 1, ACTION_DIM)


@pytest.mark.parametrize("distribution", ["beta", "gaussian", "multicategorical"])
def test_joint_model_save_load_round_trip(tmp_path: Path, distribution: str) -> None:
    brain = _tiny("lstm", distribution)
    values = _values(brain, INPUT_SHAPES, seed=3)
    inputs = brain.select_inputs(brain.joint, values)
    before = brain.joint(inputs)
    path = tmp_path / "lstm_joint.keras"
    brain.joint.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded(inputs)
    assert set(after) == set(before)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], atol=TOLERANCE)


def test_unknown_brain_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"Unknown brain; expected one of \[.*'lstm'.*'wide'"):
        build_brain("transformer", input_shapes=INPUT_SHAPES, action_dim=ACTION_DIM)


@pytest.mark.parametrize(
    ("input_shapes", "message"),
    [
        ({"smell": (3,)}, "must be Sensation modalities"),
        ({"proprioception": (3, 2)}, r"input_shapes\['proprioception'\] must be 1 positive"),
        ({"vision": (8, 8)}, r"input_shapes\['vision'\] must be 3 positive"),
        ({"goal": (0,)}, "positive ints"),
        ({"asymmetric": (3,)}, "policy needs at least one of"),
    ],
)
def test_invalid_input_shapes(input_shapes: dict[str, tuple[int, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_brain("mlp", input_shapes=input_shapes, action_dim=ACTION_DIM)


def test_invalid_sizes_and_distributions() -> None:
    with pytest.raises(ValueError, match="recurrent_units"):
        build_brain("lstm", input_shapes=INPUT_SHAPES, action_dim=ACTION_DIM, recurrent_units=0)
    with pytest.raises(TypeError):
        build_brain("mlp", input_shapes=INPUT_SHAPES, action_dim=ACTION_DIM, recurrent_units=4)
    with pytest.raises(ValueError, match="action_dim"):
        build_brain(
            "mlp",
            input_shapes=INPUT_SHAPES,
            action_dim=ACTION_DIM,
            distribution=GaussianDistribution(ACTION_DIM + 1),
        )
    brain = _tiny("mlp", "multicategorical", distribution_options={"n_bins": 5})
    assert brain.distribution.param_shapes == {"logits": (ACTION_DIM, 5)}


def test_select_inputs_names_missing_inputs() -> None:
    brain = _tiny("lstm")
    with pytest.raises(ValueError, match=r"missing \['policy_state_c', 'policy_state_h'\]"):
        brain.select_inputs(brain.policy, _values(_tiny("mlp"), INPUT_SHAPES))


STATISTICS = {
    "proprioception": (np.linspace(-1.0, 1.0, 5), np.linspace(0.5, 4.0, 5)),
    "goal": (np.array([0.3, -0.2, 2.0]), np.array([0.01, 1.0, 9.0])),
    "asymmetric": (np.full(4, 0.5), np.full(4, 0.25)),
}


def _normalized(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``clip((x - mean) / sqrt(var + eps))`` computed in numpy."""
    normalized = (x - mean) / np.sqrt(var + NORMALIZATION_EPSILON)
    return np.clip(normalized, -NORMALIZATION_CLIP, NORMALIZATION_CLIP).astype(np.float32)


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_normalized_brain_equals_plain_brain_on_normalized_inputs(name: str) -> None:
    normalized = _tiny(name)
    plain = _tiny(name, normalize_inputs=False)
    assert normalized.input_normalizers == {m: (f"{m}_normalization",) for m in INPUT_SHAPES}
    assert plain.input_normalizers == {}
    for layer in plain.joint.layers:
        layer.set_weights(normalized.joint.get_layer(layer.name).get_weights())
    rms = RunningMeanStd((5,))
    rms.update(np.random.default_rng(4).normal(2.0, 3.0, size=(100, 5)))
    normalized.set_input_statistics({**STATISTICS, "proprioception": rms})
    statistics = {**STATISTICS, "proprioception": (rms.mean, rms.var)}

    values = _values(normalized, INPUT_SHAPES, seed=5)
    values["goal"][0, 0] = [100.0, -100.0, 0.0]  # beyond the clip range
    out = normalized.joint(normalized.select_inputs(normalized.joint, values))
    fed = {
        key: _normalized(value, *statistics[key]) if key in statistics else value
        for key, value in values.items()
    }
    expected = plain.joint(plain.select_inputs(plain.joint, fed))
    for key in out:
        np.testing.assert_allclose(out[key], expected[key], atol=TOLERANCE, err_msg=key)


def test_normalization_statistics_are_weights_but_not_trainable() -> None:
    brain = _tiny("lstm")
    plain = _tiny("lstm", normalize_inputs=False)
    names = {weight.path for weight in brain.joint.trainable_weights}
    assert not any("normalization" in path for path in names)
    assert len(brain.joint.trainable_weights) == len(plain.joint.trainable_weights)
    statistics = [w for w in brain.joint.non_trainable_weights if "normalization" in w.path]
    assert len(statistics) == 2 * len(INPUT_SHAPES)

    brain.set_input_statistics(STATISTICS)
    other = _tiny("lstm")
    assign_flat_weights(other.joint, flat_weights(brain.joint))
    for modality, (mean, var) in other.input_statistics().items():
        np.testing.assert_allclose(mean, STATISTICS[modality][0], rtol=1e-6)
        np.testing.assert_allclose(var, STATISTICS[modality][1], rtol=1e-6)


def test_vision_is_not_normalized_and_bad_statistics_are_rejected() -> None:
    brain = _tiny("mlp", input_shapes=VISION_SHAPES)
    assert set(brain.input_normalizers) == {"touch", "asymmetric"}
    with pytest.raises(ValueError, match=r"normalized modalities \['touch', 'asymmetric'\]"):
        brain.set_input_statistics({"vision": (np.zeros(3), np.ones(3))})
    with pytest.raises(ValueError, match=r"expected mean and variance of shape \(6,\)"):
        brain.set_input_statistics({"touch": (np.zeros(5), np.ones(5))})
    with pytest.raises(ValueError, match="variances >= 0"):
        brain.set_input_statistics({"touch": (np.zeros(6), -np.ones(6))})


def test_running_normalization_layer_round_trips_through_keras_save(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`clip` must be a finite number > 0"):
        RunningNormalization(clip=0.0)
    with pytest.raises(ValueError, match="`epsilon` must be a finite number > 0"):
        RunningNormalization(epsilon=float("nan"))

    inputs = keras.Input(shape=(None, 3), name="goal")
    layer = RunningNormalization(clip=2.0, epsilon=1e-3, name="goal_normalization")
    model = keras.Model(inputs, layer(inputs))
    layer.set_statistics([1.0, 0.0, -1.0], [4.0, 1.0, 0.0])
    assert layer.trainable_weights == []
    x = np.array([[[3.0, 0.5, -1.0], [1.0, 9.0, 0.0]]], np.float32)
    expected = np.clip((x - [1.0, 0.0, -1.0]) / np.sqrt(np.array([4.0, 1.0, 0.0]) + 1e-3), -2, 2)
    np.testing.assert_allclose(model(x), expected, rtol=1e-6)

    path = tmp_path / "normalization.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.get_layer("goal_normalization")
    assert isinstance(restored, RunningNormalization)
    assert restored.get_config() == layer.get_config()
    np.testing.assert_allclose(loaded(x), expected, rtol=1e-6)
