"""The cortical brain: its module graph as declared, frozen and loaded modules, training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from neuroloop.brain.activations import LIFRate
from neuroloop.brain.contract import Brain
from neuroloop.brain.loading import build_brain
from neuroloop.training.checkpoint import load_checkpoint
from tests.processes import run_neuroloop as neuroloop

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "experiments" / "reach_cortical.yaml"
SHAPES: dict[str, tuple[int, ...]] = {
    "vision": (16, 16, 3),
    "touch": (5,),
    "proprioception": (6,),
    "goal": (3,),
    "asymmetric": (4,),
}
NO_VISION = {name: shape for name, shape in SHAPES.items() if name != "vision"}
SMALL: dict[str, Any] = {
    "modules": {
        name: {"units": units}
        for name, units in [
            ("visual", 7),
            ("somatosensory", 6),
            ("parietal", 5),
            ("premotor", 4),
            ("motor", 3),
        ]
    },
    "value": {"units": 5},
    "vision_filters": [2],
}
ACTION_DIM = 2


def cortical(shapes: dict[str, tuple[int, ...]] = SHAPES, **options: Any) -> Brain:
    return build_brain(
        "cortical", input_shapes=shapes, action_dim=ACTION_DIM, **{**SMALL, **options}
    )


def sources(brain: Brain, layer: str) -> list[str]:
    """Names of the layers whose outputs feed ``layer`` (through its inputs' concatenation)."""
    tensor = brain.joint.get_layer(layer).input
    if isinstance(tensor, list):  # a recurrent layer's: the sequence, then the states
        tensor = tensor[0]
    concat = tensor._keras_history.operation
    tensors = concat.input if isinstance(concat, keras.layers.Concatenate) else [tensor]
    return [t._keras_history.operation.name for t in tensors]


def test_the_graph_is_built_as_declared() -> None:
    brain = cortical()
    # Each module's Dense reads exactly its declared inputs, through their output layers.
    assert sources(brain, "visual") == ["visual_flatten"]
    assert sources(brain, "somatosensory") == [
        "touch_normalization",
        "proprioception_normalization",
    ]
    assert sources(brain, "parietal") == ["visual", "somatosensory", "goal_normalization"]
    assert sources(brain, "premotor") == ["parietal"]
    assert sources(brain, "motor") == ["premotor_lstm", "somatosensory"]
    assert sources(brain, "policy_alpha_dense") == ["motor_lstm"]
    assert sources(brain, "premotor_lstm") == ["premotor"]
    assert sources(brain, "visual_scale") == ["vision"]
    # Which are recurrent, and their named state.
    assert isinstance(brain.joint.get_layer("premotor_lstm"), keras.layers.LSTM)
    assert isinstance(brain.joint.get_layer("motor_lstm"), keras.layers.LSTM)
    assert brain.policy_state_sizes == {
        "policy_state_premotor_h": 4,
        "policy_state_premotor_c": 4,
        "policy_state_motor_h": 3,
        "policy_state_motor_c": 3,
    }
    assert brain.value_state_sizes == {"value_state_h": 5, "value_state_c": 5}
    # The value network is separate and reads asymmetric; the policy never does.
    value_layers = {layer.name for layer in brain.value.layers}
    assert not value_layers & {"visual", "somatosensory", "parietal", "premotor", "motor"}
    assert "asymmetric" in value_layers
    assert brain.policy_modalities == ("vision", "touch", "proprioception", "goal")
    assert brain.value_modalities == tuple(SHAPES)


def test_without_vision_the_visual_module_and_its_edge_are_left_out() -> None:
    brain = cortical(NO_VISION)
    names = {layer.name for layer in brain.joint.layers}
    assert not any(name.startswith("visual") for name in names)
    assert sources(brain, "parietal") == ["somatosensory", "goal_normalization"]


def test_sizes_recurrence_connections_and_activations_are_options() -> None:
    brain = cortical(
        NO_VISION,
        modules={
            "premotor": {"recurrent": None, "units": 4},
            "motor": {"recurrent": "gru", "inputs": ["parietal", "premotor"], "units": 3},
            "cerebellum": {"inputs": ["proprioception", "motor"], "units": 2},
            "somatosensory": {"activation": {"name": "soft_lif", "tau_ref": 0.004}},
        },
        output="cerebellum",
        activation="relu",
    )
    assert brain.policy_state_sizes == {"policy_state_motor_h": 3}
    assert isinstance(brain.joint.get_layer("motor_gru"), keras.layers.GRU)
    assert sources(brain, "motor") == ["parietal", "premotor"]
    assert sources(brain, "cerebellum") == ["proprioception_normalization", "motor_gru"]
    assert sources(brain, "policy_alpha_dense") == ["cerebellum"]
    lif = brain.joint.get_layer("somatosensory_soft_lif")
    assert isinstance(lif, LIFRate) and lif.tau_ref == 0.004 and lif.smoothing > 0
    assert brain.joint.get_layer("parietal").activation is keras.activations.relu


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"modules": {"premotor": {"inputs": ["motor"]}}}, "must not form a cycle"),
        ({"modules": {"parietal": {"inputs": ["smell"]}}}, "Received: 'smell'"),
        ({"modules": {"parietal": {"inputs": ["asymmetric"]}}}, "Received: 'asymmetric'"),
        ({"modules": {"motor": {"size": 3}}}, r"`modules.motor` takes \['inputs'"),
        ({"modules": {"motor": {"recurrent": "rnn"}}}, "modules.motor.recurrent"),
        ({"modules": {"extra": {"units": 3}}}, "`modules.extra` needs `inputs`"),
        ({"output": "cerebellum"}, "`output` must be a module that receives input"),
        ({"value": {"units": 0}}, "value.units"),
        ({"modules": {"goal": {"inputs": ["touch"]}}}, "not modalities"),
        ({"modules": {"value_x": {"inputs": ["touch"]}}}, "Received: 'value_x'"),
        ({"modules": {"motor": {"inputs": "premotor"}}}, "must be a list of modality"),
    ],
)
def test_bad_graphs_name_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cortical(NO_VISION, **options)


def _inputs(brain: Brain, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    values: dict[str, Any] = {
        name: rng.uniform(0, 255, size=(2, 3, *shape)).astype(np.float32)
        for name, shape in SHAPES.items()
    }
    values.update(brain.initial_state(2))
    return brain.select_inputs(brain.joint, values)


def test_stepping_with_carried_state_equals_the_whole_sequence() -> None:
    brain = cortical(activation="soft_lif")
    inputs = _inputs(brain, seed=1)
    whole = brain.joint(inputs)
    state = {name: inputs[name] for name in brain.state_names}
    for t in range(3):
        step = {name: inputs[name][:, t : t + 1] for name in SHAPES}
        out = brain.joint(brain.select_inputs(brain.joint, {**step, **state}))
        np.testing.assert_allclose(out["alpha"][:, 0], whole["alpha"][:, t], atol=1e-5)
        state = {name: out[name] for name in brain.state_names}
    for name in brain.state_names:
        np.testing.assert_allclose(state[name], whole[name], atol=1e-5)


def test_frozen_modules_do_not_change_under_an_optimizer_step() -> None:
    frozen = ("somatosensory", "premotor")
    brain = cortical(
        modules={
            **SMALL["modules"],
            **{name: {**SMALL["modules"][name], "frozen": True} for name in frozen},
        }
    )
    frozen_layers = ("somatosensory", "premotor", "premotor_lstm")
    before = {layer.name: layer.get_weights() for layer in brain.joint.layers}
    trainable = {id(v) for v in brain.joint.trainable_variables}
    for name in frozen_layers:
        assert before[name] and not {id(v) for v in brain.joint.get_layer(name).weights} & trainable
    optimizer = keras.optimizers.Adam(learning_rate=0.1)
    inputs = _inputs(brain, seed=2)
    with tf.GradientTape() as tape:
        out = brain.joint(inputs)
        loss = sum(tf.reduce_sum(out[key] ** 2) for key in ("alpha", "beta", "value"))
    variables = brain.joint.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    for layer in brain.joint.layers:
        after = layer.get_weights()
        changed = any(
            not np.array_equal(a, b) for a, b in zip(after, before[layer.name], strict=True)
        )
        if layer.name in frozen_layers:
            assert not changed, layer.name
        elif layer.name in ("visual", "parietal", "motor", "motor_lstm", "value_lstm"):
            assert changed, layer.name


def test_modules_load_from_another_trained_brain(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    trained = cortical(NO_VISION)
    path = tmp_path / "trained.weights.h5"
    trained.joint.save_weights(path)
    keras.utils.set_random_seed(2)
    # A new module drives the trained premotor cortex: motor now reads it and "intention".
    modules = {
        **SMALL["modules"],
        "intention": {"inputs": ["goal"], "units": 2},
        "motor": {"inputs": ["premotor", "intention"], "units": 3, "recurrent": "lstm"},
        "premotor": {"units": 4, "frozen": True},
    }
    loaded = cortical(
        NO_VISION,
        modules=modules,
        load={
            "weights": str(path),
            "modules": ["somatosensory", "parietal", "premotor"],
            "options": SMALL,
        },
    )
    for name in ("somatosensory", "parietal", "premotor", "premotor_lstm", "motor"):
        pairs = zip(
            loaded.joint.get_layer(name).get_weights(),
            trained.joint.get_layer(name).get_weights(),
            strict=True,
        )
        same = all(np.array_equal(a, b) for a, b in pairs)
        assert same == (name != "motor"), name  # motor was not loaded (and has a new input)
    assert not loaded.joint.get_layer("premotor_lstm").trainable
    with pytest.raises(ValueError, match=r"`load\.modules` must name modules of this brain"):
        cortical(NO_VISION, load={"weights": str(path), "modules": ["cerebellum"]})


def test_the_cortical_brain_trains_two_cycles_under_two_mpi_processes(tmp_path: Path) -> None:
    run_dir = tmp_path / "cortical"
    options = '{"activation": "lif", "modules": {"premotor": {"units": 8}, "motor": {"units": 8}}}'
    result = neuroloop(
        "train",
        RECIPE,
        "--workers",
        "2",
        "--cycles",
        "2",
        "--run-dir",
        run_dir,
        "--quiet",
        "-o",
        "Worlds=2",
        "-o",
        "Horizon=16",
        "-o",
        "PPO.Epochs=1",
        "-o",
        "PPO.Minibatches=1",
        "-o",
        f"BrainOptions={options}",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    state = load_checkpoint(run_dir / "checkpoints" / "latest.npz")
    assert state.cycle == 2
    shapes = {tuple(array.shape) for array in state.weights}
    # The premotor LSTM (8 units, input from its 8-unit Dense): kernel [8, 32].
    assert (8, 32) in shapes, shapes


def test_an_lif_cortical_brain_round_trips_through_a_saved_model(tmp_path: Path) -> None:
    brain = cortical(activation={"name": "lif", "v_th": 0.5})
    inputs = _inputs(brain, seed=3)
    path = tmp_path / "cortical.keras"
    brain.joint.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("parietal_lif"), LIFRate)
    assert loaded.get_layer("parietal_lif").v_th == 0.5
    before, after = brain.joint(inputs), loaded(inputs)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], atol=1e-5)


def test_the_shipped_cortical_reach_brain_loads_and_acts_in_the_control_range() -> None:
    from neuroloop.brain.trained import load_weights_file

    brain = load_weights_file(REPO / "experiments" / "trained" / "reach_cortical.weights.h5")
    names = {layer.name for layer in brain.brain.policy.layers}
    assert {"somatosensory", "parietal", "premotor", "motor"} <= names
    assert "visual" not in names  # reach has no camera: the module and its edge are left out
    rng = np.random.default_rng(0)
    sensation = {
        name: rng.normal(size=(3, *shape)).astype(np.float32)
        for name, shape in brain.input_shapes.items()
    }
    action, state, _ = brain.step(sensation)
    assert action.shape == (3, 20)
    assert np.all((action >= 0) & (action <= 1))  # Beta modes, mapped to ranges by the body
    again, _, _ = brain.step(sensation, state)
    assert not np.allclose(action, again)  # the LSTM state carries the first step
