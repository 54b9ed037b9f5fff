"""Vision in the Shadow Hand loop: camera frames of every world reach the brain as ``vision``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from neuroloop.recording import DataPackRecorder
from neuroloop.simulation import Simulation
from tests.processes import last_json_line_with_egl

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "simulation_configs"
PHYSICS = "EngineConfigs.EngineName:physics.EngineExtraConfigs"
BRAIN = "EngineConfigs.EngineName:brain.EngineExtraConfigs"
STEPS = 4
SMALL_BRAIN = '{"modules": {"premotor": {"units": 8}, "motor": {"units": 8}}}'


@pytest.mark.parametrize(
    "config", ["shadow_hand_reach_vision.json", "shadow_hand_manipulate_block_vision.json"]
)
def test_vision_datapacks_have_the_configured_shape_and_follow_each_worlds_state(
    config: str, tmp_path: Path
) -> None:
    overrides = (
        f"SimulationTimeout={0.04 * STEPS}",
        f"{PHYSICS}.Worlds=2",
        f"{BRAIN}.Worlds=2",
        f"{PHYSICS}.Camera.Width=40",
        f"{PHYSICS}.Camera.Height=24",
        f"{BRAIN}.InputShapes.vision=[24, 40, 3]",
        f"{BRAIN}.BrainOptions={SMALL_BRAIN}",
    )
    recording = tmp_path / "vision.npz"
    with DataPackRecorder(recording) as recorder:
        with Simulation.from_config(
            CONFIGS / config, overrides, recorder=recorder, echo_engine_output=False
        ) as sim:
            sim.run_until_timeout()
    with np.load(recording) as archive:
        vision = archive["to_engine/brain/vision"]
        joints = archive["from_engine/physics/joint_positions"]
    assert vision.dtype == np.uint8
    assert vision.shape == (len(vision), 2, 24, 40, 3) and len(vision) >= STEPS - 1
    assert vision.std() > 10  # a picture, not a blank frame
    # The two worlds start in the same state, then act on their own samples: equal states
    # give equal frames, and once the hands have moved apart the frames differ.
    same_state = [np.array_equal(q[0], q[1]) for q in joints[-len(vision) :]]
    same_frame = [np.array_equal(frames[0], frames[1]) for frames in vision]
    assert same_state[0] and not same_state[-1]
    assert all(frame for frame, state in zip(same_frame, same_state, strict=True) if state)
    assert not same_frame[-1]


THREADS_SCRIPT = textwrap.dedent(
    """
    import json
    from concurrent.futures import ThreadPoolExecutor
    from neuroloop.plugins.engines.mujoco_engine import MujocoEngine

    engine = MujocoEngine("physics")
    engine.initialize({
        "EngineTimestep": 0.02,
        "EngineExtraConfigs": {"Model": "reach", "Worlds": 2, "Camera": {"Width": 16, "Height": 8}},
    })
    shapes = []
    for step in range(3):  # gRPC calls arrive on any of the server's threads
        engine.step(20_000_000)
        with ThreadPoolExecutor(1) as thread:
            shapes.append(list(thread.submit(engine.get_datapack, "camera").result().shape))
    engine.shutdown()
    print(json.dumps(shapes))
    """
)


def test_the_camera_renders_when_each_call_comes_from_another_thread() -> None:
    result = last_json_line_with_egl(THREADS_SCRIPT)
    assert result == [[2, 8, 16, 3]] * 3
