"""MujocoEngine: real MuJoCo, driven in-process through EngineHost."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import pytest

from neuroloop.engine import EngineHost
from neuroloop.plugins.engines.mujoco_engine import (
    SCHEMA_FILE,
    MujocoEngine,
    PhysicsError,
    PhysicsInstabilityError,
    shipped_model_folder,
    shipped_models,
)

HAND_MODELS = ("reach", "manipulate_block", "manipulate_block_touch_sensors")
CONTROL_DT_S = 0.02
CONTROL_DT_NS = 20_000_000
STEPS_PER_SECOND = 50
NAME = "physics"
REPO = Path(__file__).resolve().parents[1]
SHADOW_HAND = str(REPO / "experiments" / "bodies" / "shadow_hand.yaml")
BLOCK_YAW = {"object:joint": {"Axis": [0, 0, 1], "Angle": math.pi}}
"""The block task's initial yaw (simulation_configs/shadow_hand_manipulate_block.json)."""
JOINT_NOISE = json.loads(SCHEMA_FILE.read_text())["properties"]["JointNoise"]["default"]

UNSTABLE_MJCF = """
<mujoco>
  <option timestep="0.002"/>
  <worldbody>
    <body name="bob">
      <joint name="spring" type="slide" axis="1 0 0" stiffness="1e7"/>
      <geom type="sphere" size="0.01" mass="0.001"/>
    </body>
  </worldbody>
</mujoco>
"""
"""A stiff spring on a tiny mass: explicit Euler diverges within one control step."""

BOXES = "".join(
    f'<body pos="{0.05 * i} 0 0.03"><freejoint/><geom type="box" size="0.02 0.02 0.02"/></body>'
    for i in range(30)
)


def boxes_mjcf(memory: str) -> str:
    """Thirty boxes dropped on a plane, with a memory arena of ``memory`` bytes."""
    return (
        f'<mujoco><size memory="{memory}"/><option timestep="0.002"/><worldbody>'
        f'<geom type="plane" size="1 1 0.1"/>{BOXES}</worldbody></mujoco>'
    )


TOO_SMALL_ARENA = "20K"
"""The boxes' first contacts do not fit: MuJoCo fails with an error."""

SMALL_ARENA = "32K"
"""The boxes fit until they land: MuJoCo drops contacts and counts mjWARN_CONTACTFULL."""


def config(model: str = "reach", timestep: float = CONTROL_DT_S, **extra: Any) -> dict[str, Any]:
    """A Shadow Hand model with its body description (and the block task's yaw noise)."""
    noise = {"RotationNoise": BLOCK_YAW} if model.startswith("manipulate") else {}
    return {
        "EngineName": NAME,
        "EngineTimestep": timestep,
        "EngineExtraConfigs": {"Model": model, "Body": SHADOW_HAND, **noise, **extra},
    }


@pytest.fixture
def scratch_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory: MuJoCo writes warnings to MUJOCO_LOG.TXT in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def open_engines() -> Iterator[list[MujocoEngine]]:
    engines: list[MujocoEngine] = []
    yield engines
    for engine in engines:
        engine.shutdown()


def start(cfg: dict[str, Any], engines: list[MujocoEngine]) -> tuple[EngineHost, MujocoEngine]:
    engine = MujocoEngine(NAME)
    engines.append(engine)
    host = EngineHost(engine)
    host.initialize(cfg)
    return host, engine


def outputs(host: EngineHost) -> list[str]:
    return [name for name in host.engine.datapack_names if name not in ("camera",)]


def read(host: EngineHost) -> dict[str, Any]:
    return host.step([], 0, outputs(host))[1]


def random_ctrl(rng: np.random.Generator, ctrlrange: np.ndarray, worlds: int) -> np.ndarray:
    return rng.uniform(ctrlrange[:, 0], ctrlrange[:, 1], (worlds, ctrlrange.shape[0]))


@pytest.mark.parametrize("model", HAND_MODELS)
def test_each_model_runs_one_second_of_random_control_without_warnings(
    model: str, open_engines: list[MujocoEngine]
) -> None:
    host, engine = start(config(model, Worlds=2), open_engines)
    host.reset(0)
    ctrlrange = read(host)["actuator_ctrlrange"]
    rng = np.random.default_rng(1)
    for _ in range(STEPS_PER_SECOND):
        host.step([("ctrl", random_ctrl(rng, ctrlrange, 2))], CONTROL_DT_NS, [])
    assert host.time_ns == 1_000_000_000
    assert engine.substeps == 10
    np.testing.assert_array_equal(engine.warning_counts(), 0)
    for name, value in read(host).items():
        assert np.all(np.isfinite(value)), name


@pytest.mark.parametrize(
    ("model", "touch", "has_object"),
    [
        ("reach", 5, False),
        ("manipulate_block", 5, True),
        ("manipulate_block_touch_sensors", 97, True),
    ],
)
def test_datapack_shapes_and_dtypes(
    model: str, touch: int, has_object: bool, open_engines: list[MujocoEngine]
) -> None:
    host, _ = start(config(model, Worlds=3), open_engines)
    host.reset(7)
    values = read(host)
    shapes = {
        "joint_positions": (3, 24),
        "joint_velocities": (3, 24),
        "actuator_positions": (3, 20),
        "touch": (3, touch),
        "fingertip_positions": (3, 5, 3),
        "palm_position": (3, 3),
        "object_pose": (3, 7),
        "object_velocities": (3, 6),
        "actuator_ctrlrange": (20, 2),
        "ctrl": (3, 20),
    }
    for name, shape in shapes.items():
        assert values[name].shape == shape, name
        assert values[name].dtype == np.float64, name
    assert ("target_pose" in values) == has_object
    quaternion_norm = np.linalg.norm(values["object_pose"][:, 3:], axis=1)
    np.testing.assert_allclose(quaternion_norm, 1.0 if has_object else 0.0)
    low, high = values["actuator_ctrlrange"].T
    assert np.all((values["ctrl"] >= low) & (values["ctrl"] <= high))


def test_shipped_models_are_read_in_place_from_the_installed_package() -> None:
    folder = shipped_model_folder()
    assert folder.parts[-3:] == ("envs", "assets", "hand")
    assert "site-packages" in folder.parts
    assert set(HAND_MODELS) <= set(shipped_models())
    assert "shared" not in shipped_models()


def test_same_seed_and_controls_give_identical_datapacks(open_engines: list[MujocoEngine]) -> None:
    runs = []
    for _ in range(2):
        host, _ = start(config("manipulate_block", Worlds=2), open_engines)
        host.reset(42)
        rng = np.random.default_rng(5)
        ctrlrange = read(host)["actuator_ctrlrange"]
        for _ in range(10):
            host.step([("ctrl", random_ctrl(rng, ctrlrange, 2))], CONTROL_DT_NS, [])
        runs.append(read(host))
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name], err_msg=name)


def test_threads_step_exactly_like_one_thread(open_engines: list[MujocoEngine]) -> None:
    runs = []
    for threads in (1, 2):
        host, _ = start(config("manipulate_block", Worlds=2, Threads=threads), open_engines)
        host.reset(3)
        ctrlrange = read(host)["actuator_ctrlrange"]
        rng = np.random.default_rng(9)
        for _ in range(5):
            host.step([("ctrl", random_ctrl(rng, ctrlrange, 2))], CONTROL_DT_NS, [])
        runs.append(read(host))
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name], err_msg=name)


def test_seeds_and_worlds_get_different_initial_states(open_engines: list[MujocoEngine]) -> None:
    host, _ = start(config("manipulate_block", Worlds=2), open_engines)
    host.reset(1)
    first = read(host)
    host.reset(2)
    second = read(host)
    host.reset(1)
    again = read(host)
    assert not np.array_equal(first["joint_positions"], second["joint_positions"])
    assert not np.array_equal(first["object_pose"], second["object_pose"])
    assert not np.array_equal(first["joint_positions"][0], first["joint_positions"][1])
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)


def test_reset_noise_is_small_and_inside_joint_ranges(open_engines: list[MujocoEngine]) -> None:
    host, engine = start(config("reach", Worlds=4), open_engines)
    initial = read(host)["joint_positions"]
    host.reset(11)
    noisy = read(host)["joint_positions"]
    assert np.all(np.abs(noisy - initial) <= JOINT_NOISE)
    model = engine._model
    assert model is not None
    low, high = model.jnt_range[:24].T
    assert np.all((noisy >= low) & (noisy <= high))
    np.testing.assert_array_equal(read(host)["joint_velocities"], 0.0)


def test_initial_joint_positions_from_config(open_engines: list[MujocoEngine]) -> None:
    host, _ = start(config("reach", InitialJointPositions={"robot0:THJ0": -0.7}), open_engines)
    assert read(host)["joint_positions"][0, 23] == -0.7


def test_engine_timestep_must_be_a_whole_number_of_substeps(
    open_engines: list[MujocoEngine],
) -> None:
    with pytest.raises(ValueError, match=r"EngineTimestep=0\.015 s") as error:
        start(config("reach", timestep=0.015), open_engines)
    assert "0.015" in str(error.value) and "0.002" in str(error.value)
    assert f"[{NAME}] initialize" in str(error.value)


def test_step_must_be_a_whole_number_of_physics_timesteps(
    open_engines: list[MujocoEngine],
) -> None:
    host, _ = start(config("reach"), open_engines)
    with pytest.raises(ValueError, match=r"\[physics\] step: .*2000000 ns.*3000000"):
        host.step([], 3_000_000, [])
    host.step([], 4_000_000, [])


def test_wrongly_shaped_ctrl_names_engine_datapack_and_shapes(
    open_engines: list[MujocoEngine],
) -> None:
    host, _ = start(config("reach", Worlds=2), open_engines)
    with pytest.raises(ValueError) as error:
        host.step([("ctrl", np.zeros((2, 19)))], CONTROL_DT_NS, [])
    message = str(error.value)
    assert "[physics] set ctrl" in message
    assert "(2, 20)" in message and "(2, 19)" in message
    with pytest.raises(ValueError, match=r"expected shape \(2, 20\).*Received: shape \(20,\)"):
        host.step([("ctrl", np.zeros(20))], CONTROL_DT_NS, [])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_ctrl_is_rejected(bad: float, open_engines: list[MujocoEngine]) -> None:
    host, _ = start(config("reach", Worlds=2), open_engines)
    ctrl = np.zeros((2, 20))
    ctrl[1, 3] = bad
    with pytest.raises(ValueError, match=r"\[physics\] set ctrl: expected finite.*worlds \[1\]"):
        host.step([("ctrl", ctrl)], CONTROL_DT_NS, [])
    assert host.time_ns == 0


def test_ctrl_outside_the_range_is_clamped_by_mujoco(open_engines: list[MujocoEngine]) -> None:
    runs: list[dict[str, Any]] = []
    for overshoot in (0.0, 1.0):
        host, _ = start(config("reach"), open_engines)
        host.reset(0)
        ctrlrange = read(host)["actuator_ctrlrange"]
        ctrl = ctrlrange[None, :, 1] + overshoot
        runs.append(host.step([("ctrl", ctrl)], CONTROL_DT_NS, ["joint_positions", "ctrl"])[1])
    np.testing.assert_array_equal(runs[0]["joint_positions"], runs[1]["joint_positions"])
    np.testing.assert_allclose(runs[1]["ctrl"] - runs[0]["ctrl"], 1.0)


def test_target_pose_holds_the_goal_marker(open_engines: list[MujocoEngine]) -> None:
    host, engine = start(config("manipulate_block"), open_engines)
    pose = np.array([[1.0, 0.9, 0.25, 0.0, 2.0, 0.0, 0.0]])
    for _ in range(5):
        host.step([("target_pose", pose)], CONTROL_DT_NS, [])
    expected = np.array([[1.0, 0.9, 0.25, 0.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(read(host)["target_pose"], expected)
    data = engine._datas[0]
    assert abs(data.qpos[-7 + 2] - 0.25) < 0.01
    with pytest.raises(ValueError, match="non-zero quaternions"):
        host.step([("target_pose", np.zeros((1, 7)))], 0, [])


def test_unknown_model_lists_the_shipped_ones(open_engines: list[MujocoEngine]) -> None:
    with pytest.raises(ValueError, match=r"\[physics\] initialize: .*'reach'.*Received: 'rech'"):
        start(config("rech"), open_engines)


def test_unknown_extra_config_key_is_rejected(open_engines: list[MujocoEngine]) -> None:
    with pytest.raises(
        ValueError, match=r"EngineExtraConfigs.World: expected a known key.*Received: World=2"
    ):
        start(config("reach", World=2), open_engines)


def test_instability_raises_naming_engine_and_world(
    scratch_dir: Path, open_engines: list[MujocoEngine]
) -> None:
    (scratch_dir / "unstable.xml").write_text(UNSTABLE_MJCF)
    cfg = {
        "EngineName": NAME,
        "EngineTimestep": CONTROL_DT_S,
        "WorldFileName": "unstable.xml",
        "ConfigDirectory": str(scratch_dir),
        "EngineExtraConfigs": {"Worlds": 2, "Publish": {"joint_positions": {"joints": "spring"}}},
    }
    host, engine = start(cfg, open_engines)
    assert "fingertip_positions" not in engine.datapack_names
    assert read(host)["joint_positions"].shape == (2, 1)
    host.reset(0)
    with pytest.raises(PhysicsInstabilityError, match=r"\[physics\] step: .*world 1: mjWARN_BAD"):
        host.step([], CONTROL_DT_NS, [])
    host.reset(0)
    np.testing.assert_array_equal(engine.warning_counts(), 0)


def boxes_config(tmp_path: Path, memory: str) -> dict[str, Any]:
    (tmp_path / "boxes.xml").write_text(boxes_mjcf(memory))
    return {
        "EngineName": NAME,
        "EngineTimestep": CONTROL_DT_S,
        "WorldFileName": str(tmp_path / "boxes.xml"),
    }


def test_mujoco_errors_name_engine_and_world(
    scratch_dir: Path, open_engines: list[MujocoEngine]
) -> None:
    with pytest.raises(PhysicsError, match=r"\[physics\] reset: MuJoCo failed in world 0.*memory"):
        start(boxes_config(scratch_dir, TOO_SMALL_ARENA), open_engines)


def test_contact_overflow_is_logged_not_raised(
    scratch_dir: Path, open_engines: list[MujocoEngine], caplog: pytest.LogCaptureFixture
) -> None:
    host, engine = start(boxes_config(scratch_dir, SMALL_ARENA), open_engines)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            host.step([], CONTROL_DT_NS, [])
    contact_full = int(mujoco.mjtWarning.mjWARN_CONTACTFULL)
    assert engine.warning_counts()[0, contact_full] > 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("[physics] step: MuJoCo mjWARN_CONTACTFULL in world 0" in m for m in messages)


CAMERA_SCRIPT = textwrap.dedent(
    """
    import json
    from neuroloop.plugins.engines.mujoco_engine import MujocoEngine
    from neuroloop.errors import EngineError

    engine = MujocoEngine("physics")
    try:
        engine.initialize({
            "EngineTimestep": 0.02,
            "EngineExtraConfigs": {
                "Model": "manipulate_block", "Worlds": 2, "Camera": {"Width": 48, "Height": 32}
            },
        })
    except EngineError as error:
        print(json.dumps({"error": str(error)}))
    else:
        engine.reset(0)
        engine.step(20_000_000)
        image = engine.get_datapack("camera")
        print(json.dumps({"shape": list(image.shape), "dtype": str(image.dtype),
                          "mean": float(image.mean())}))
        engine.shutdown()
    """
)


def run_camera_script(env: dict[str, str]) -> dict[str, Any]:
    import json

    done = subprocess.run(
        [sys.executable, "-c", CAMERA_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_camera_without_a_gl_backend_is_a_clear_error() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL")
    }
    result = run_camera_script(env)
    assert "error" in result, result
    assert result["error"].startswith("[physics] initialize: Camera needs an OpenGL backend")
    assert "MUJOCO_GL=egl" in result["error"]


def test_camera_renders_every_world_with_egl() -> None:
    result = run_camera_script({**os.environ, "MUJOCO_GL": "egl"})
    if "error" in result:
        pytest.skip(f"EGL is not usable here: {result['error']}")
    assert result["shape"] == [2, 32, 48, 3]
    assert result["dtype"] == "uint8"
    assert 0 < result["mean"] < 255


def test_reset_worlds_restarts_only_the_flagged_worlds(open_engines: list[MujocoEngine]) -> None:
    host, _ = start(config("reach", Worlds=3), open_engines)
    host.reset(11)
    initial = read(host)["joint_positions"]
    ctrlrange = read(host)["actuator_ctrlrange"]
    rng = np.random.default_rng(0)
    for _ in range(5):
        host.step([("ctrl", random_ctrl(rng, ctrlrange, 3))], CONTROL_DT_NS, [])
    moved = read(host)["joint_positions"]
    flags = np.array([False, True, False])
    _, values = host.step([("reset_worlds", flags)], 0, ["reset_worlds"])
    assert values["reset_worlds"].tolist() == flags.tolist()
    # The reset happens at the start of the next step; world 1 then starts afresh, holding
    # its new pose, while worlds 0 and 2 go on from where they were.
    host.step([], CONTROL_DT_NS, [])
    after = read(host)
    assert not after["reset_worlds"].any()
    fresh = after["joint_positions"][1]
    assert np.abs(fresh - initial[1]).max() < 0.1
    assert not np.allclose(fresh, moved[1])
    assert np.abs(after["joint_positions"][[0, 2]] - moved[[0, 2]]).max() < 0.5
    with pytest.raises(ValueError, match="reset_worlds"):
        host.step([("reset_worlds", np.ones(2, dtype=bool))], 0, [])


def test_rotation_noise_turns_the_block_about_the_vertical_only(
    open_engines: list[MujocoEngine],
) -> None:
    host, engine = start(config("manipulate_block", Worlds=64), open_engines)
    host.reset(4)
    model = engine._model
    assert model is not None
    address = model.jnt_qposadr[model.joint("object:joint").id]
    start_quat = model.qpos0[address + 3 : address + 7]
    turned = read(host)["object_pose"][:, 3:]
    # turned = yaw * start, so turned * conj(start) is a pure rotation about z: (c, 0, 0, s).
    relative = np.empty_like(turned)
    conjugate = start_quat * np.array([1.0, -1.0, -1.0, -1.0])
    for row, quat in zip(relative, turned, strict=True):
        mujoco.mju_mulQuat(row, quat, conjugate)
    np.testing.assert_allclose(relative[:, 1:3], 0.0, atol=1e-12)
    yaw = 2.0 * np.arctan2(relative[:, 3], relative[:, 0])
    yaw = (yaw + np.pi) % (2.0 * np.pi) - np.pi
    # Uniform on [-pi, pi]: standard deviation pi / sqrt(3) = 1.81.
    assert abs(yaw.std() - np.pi / np.sqrt(3.0)) < 0.3
