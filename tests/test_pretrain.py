"""Pose pretraining of the visual module: the 6-D rotation representation, training beating
the mean-pose baseline on rendered frames, and the saved component in the cortical brain.

The rendered test needs an offscreen OpenGL backend (EGL or OSMesa); where none works, it is
skipped with the backends' own reasons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from neuroloop.brain.contract import Brain
from neuroloop.brain.loading import build_brain
from neuroloop.brain.trained import read_architecture
from neuroloop.pretrain.frames import PoseFrames
from neuroloop.pretrain.rotation import (
    angle_between,
    matrix_to_6d,
    mean_rotation,
    sixd_to_matrix,
    sixd_to_matrix_tensor,
)
from neuroloop.pretrain.vision import PoseTraining, save_component, train_pose
from tests.processes import REPO, run_neuroloop

BLOCK_VISION = "shadow_hand_manipulate_block_vision"
PHYSICS = "EngineConfigs.EngineName:physics.EngineExtraConfigs"
BRAIN = "EngineConfigs.EngineName:brain.EngineExtraConfigs"
SIZE = 32
TINY_FRAMES = 160
SHAPES: dict[str, tuple[int, ...]] = {"vision": (12, 12, 3), "touch": (4,), "goal": (3,)}
SMALL: dict[str, Any] = {
    "modules": {name: {"units": 6} for name in ("visual", "somatosensory", "parietal")}
    | {name: {"units": 4} for name in ("premotor", "motor")},
    "value": {"units": 4},
    "vision_filters": [3, 4],
    "activation": "soft_lif",
}
SETTINGS = {
    "Brain": "cortical",
    "BrainOptions": SMALL,
    "Distribution": "beta",
    "InputShapes": {name: list(shape) for name, shape in SHAPES.items()},
    "ActionDim": 2,
}
NO_GL = "rendering needs an offscreen OpenGL backend"
"""How the command says that no backend works (the test is then skipped, saying why)."""
SHIPPED_POSE_BLOCK = REPO / "experiments" / "trained" / "block_visual_pose.weights.h5"
VISUAL_LAYERS = ("visual_step_conv0", "visual_step_conv1", "visual")


def test_6d_round_trip_of_known_rotations() -> None:
    quarter_turn_z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    known = np.stack([np.eye(3), quarter_turn_z, *Rotation.random(20, random_state=1).as_matrix()])
    sixd = matrix_to_6d(known)
    assert sixd.shape == (22, 6)
    np.testing.assert_allclose(sixd[1], [0.0, 1.0, 0.0, -1.0, 0.0, 0.0])  # the first 2 columns
    np.testing.assert_allclose(sixd_to_matrix(sixd), known, atol=1e-7)
    # Any 6 numbers (columns scaled, the second tilted towards the first) map to a rotation,
    # and Gram-Schmidt recovers the one the columns span.
    raw = np.concatenate([3.0 * sixd[:, :3], 0.5 * sixd[:, 3:] + 2.0 * sixd[:, :3]], axis=-1)
    back = sixd_to_matrix(raw)
    np.testing.assert_allclose(back, known, atol=1e-7)
    np.testing.assert_allclose(np.linalg.det(back), 1.0, atol=1e-7)
    tensor = keras.ops.convert_to_numpy(sixd_to_matrix_tensor(raw.astype(np.float32)))
    np.testing.assert_allclose(tensor, known, atol=1e-5)


def test_angles_and_mean_of_known_rotations() -> None:
    turns = Rotation.from_euler("x", [[-40.0], [30.0], [40.0]], degrees=True).as_matrix()
    np.testing.assert_allclose(angle_between(np.eye(3)[None], turns), [40.0, 30.0, 40.0])
    # Turns symmetric about a rotation average to it.
    centre = Rotation.from_euler("zyx", [10.0, -20.0, 5.0], degrees=True).as_matrix()
    symmetric = centre @ Rotation.from_euler("y", [[-25.0], [25.0]], degrees=True).as_matrix()
    np.testing.assert_allclose(mean_rotation(symmetric), centre, atol=1e-12)


def test_pose_pretraining_on_a_tiny_rendered_dataset_beats_the_mean_pose_baseline(
    tmp_path: Path,
) -> None:
    done = run_neuroloop(
        "pretrain",
        "vision",
        BLOCK_VISION,
        "-o",
        tmp_path,
        "--frames",
        str(TINY_FRAMES),
        "--epochs",
        "40",
        "--learning-rate",
        "0.003",
        "--held-out",
        "0.25",
        "--override",
        f"{PHYSICS}.Camera.Width={SIZE}",
        "--override",
        f"{PHYSICS}.Camera.Height={SIZE}",
        "--override",
        f"{BRAIN}.InputShapes.vision=[{SIZE}, {SIZE}, 3]",
    )
    if done.returncode != 0 and NO_GL in done.stderr:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "frames/s" in done.stderr and "epoch 40/40" in done.stderr
    report = json.loads((tmp_path / "pose_report.json").read_text())
    ours, baseline = report["held_out_errors"], report["mean_pose_baseline"]
    assert report["held_out"] == TINY_FRAMES // 4 and report["frame_shape"] == [SIZE, SIZE, 3]
    assert ours["position_error_mm"]["mean"] < baseline["position_error_mm"]["mean"]
    # Orientation is not compared here: 120 training frames of 32x32 do not teach it (held-out
    # means of 124.5-128.7 deg over runs, against the mean pose's 127.2 deg). The shipped
    # module, pretrained on 4,800 frames of 64x64, reports 58.8 deg against 125.8 deg.
    assert np.isfinite(ours["orientation_error_deg"]["mean"])
    with np.load(tmp_path / "pose_frames.npz") as frames:
        assert frames["frames"].shape == (TINY_FRAMES, SIZE, SIZE, 3)
        # The block lies in the hand: within a palm's reach of the palm.
        assert np.linalg.norm(frames["positions"], axis=-1).max() < 0.15
    # The weights load into the config's own brain as its visual module.
    shapes = {"vision": (SIZE, SIZE, 3), "proprioception": (48,), "touch": (97,), "goal": (4,)}
    weights = tmp_path / "visual.weights.h5"
    brain = build_brain(
        "cortical",
        input_shapes=shapes,
        action_dim=20,
        activation="soft_lif",
        visual_weights=str(weights),
    )
    assert_visual_module_of(weights, brain)


def assert_visual_module_of(weights: Path, brain: Brain) -> None:
    """``brain``'s visual module holds that of the brain ``weights`` (and its architecture)."""
    architecture = read_architecture(weights)
    assert architecture is not None
    source = architecture.build()
    source.joint.load_weights(weights)
    for name in VISUAL_LAYERS:
        expected = source.joint.get_layer(name).get_weights()
        for a, b in zip(brain.joint.get_layer(name).get_weights(), expected, strict=True):
            np.testing.assert_array_equal(a, b)


def synthetic_frames(count: int, rng: np.random.Generator) -> PoseFrames:
    frames = rng.integers(0, 256, size=(count, *SHAPES["vision"]), dtype=np.uint8)
    positions = rng.normal(scale=0.02, size=(count, 3))
    return PoseFrames(frames, positions, Rotation.random(count, random_state=2).as_matrix())


def test_the_saved_component_loads_into_the_cortical_visual_module(tmp_path: Path) -> None:
    trained = build_brain("cortical", input_shapes=SHAPES, action_dim=2, **SMALL)
    before = [trained.joint.get_layer(name).get_weights() for name in VISUAL_LAYERS]
    data = synthetic_frames(20, np.random.default_rng(0))
    report = train_pose(trained, data, PoseTraining(epochs=2, batch_size=8))
    weights = save_component(trained, SETTINGS, report, tmp_path)
    assert json.loads((tmp_path / "pose_report.json").read_text())["held_out"] == 4

    # Another cortical brain (other modalities, other modules' sizes) takes the module.
    options = {**SMALL, "modules": {**SMALL["modules"], "visual": {"units": 6, "frozen": True}}}
    options["modules"]["parietal"] = {"units": 9}
    shapes = {"vision": SHAPES["vision"], "proprioception": (5,)}
    loaded = build_brain(
        "cortical", input_shapes=shapes, action_dim=3, visual_weights=str(weights), **options
    )
    fresh = build_brain("cortical", input_shapes=shapes, action_dim=3, **options)
    for index, name in enumerate(VISUAL_LAYERS):
        values = trained.joint.get_layer(name).get_weights()
        # Pretraining changed the module, and the loaded brain holds what it learned.
        assert not all(np.array_equal(a, b) for a, b in zip(values, before[index], strict=True))
        for a, b in zip(loaded.joint.get_layer(name).get_weights(), values, strict=True):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(fresh.joint.get_layer(name).get_weights()[0], values[0])
        assert not loaded.joint.get_layer(name).trainable


def test_visual_weights_need_a_visual_module_and_an_architecture_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`visual_weights` needs the module 'visual'"):
        build_brain(
            "cortical", input_shapes={"touch": (4,)}, action_dim=2, visual_weights="x.weights.h5"
        )
    bare = tmp_path / "bare.weights.h5"
    build_brain("cortical", input_shapes=SHAPES, action_dim=2, **SMALL).joint.save_weights(bare)
    with pytest.raises(ValueError, match=r"with its \.brain\.json beside it"):
        build_brain(
            "cortical", input_shapes=SHAPES, action_dim=2, visual_weights=str(bare), **SMALL
        )


def test_pretrain_of_a_config_without_vision_is_a_clear_error(tmp_path: Path) -> None:
    done = run_neuroloop(
        "pretrain", "vision", "shadow_hand_manipulate_block", "-o", tmp_path, "--frames", "2"
    )
    assert done.returncode == 2
    assert "InputShapes: expected a 'vision' input" in done.stderr
    assert "Traceback" not in done.stderr


def test_pretrain_on_a_file_that_holds_no_frames_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "frames.npz"
    np.savez(data, frames=np.zeros((2, 4, 4, 3), dtype=np.uint8))
    done = run_neuroloop("pretrain", "vision", BLOCK_VISION, "-o", tmp_path, "--data", data)
    assert done.returncode == 2
    assert f"{data}: expected a pose frames file" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_shipped_pose_block_loads_frozen_into_the_block_vision_brain() -> None:
    config = REPO / "simulation_configs" / f"{BLOCK_VISION}.json"
    extra = json.loads(config.read_text())["EngineConfigs"][1]["EngineExtraConfigs"]
    shapes = {name: tuple(shape) for name, shape in extra["InputShapes"].items()}
    options = {**extra["BrainOptions"], "modules": {"visual": {"frozen": True}}}
    brain = build_brain(
        "cortical",
        input_shapes=shapes,
        action_dim=extra["ActionDim"],
        visual_weights="block_visual_pose",
        **options,
    )
    assert_visual_module_of(SHIPPED_POSE_BLOCK, brain)
    assert not any(brain.joint.get_layer(name).trainable for name in VISUAL_LAYERS)
