"""Watching a brain: offscreen pictures, goal markers, videos, the Gymnasium render mode.

Every test here needs an offscreen OpenGL backend (EGL or OSMesa); where none works, it is
skipped with the backends' own reasons.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from neuroloop.errors import UsageError
from neuroloop.render import choose_gl_backend, write_video
from tests.processes import REPO, run_neuroloop

REACH = REPO / "simulation_configs" / "shadow_hand_reach.json"
ONE_WORLD = (
    "EngineConfigs.EngineName:physics.EngineExtraConfigs.Worlds=1",
    "EngineConfigs.EngineName:brain.EngineExtraConfigs.Worlds=1",
)


@pytest.fixture(scope="module")
def gl_backend() -> str:
    try:
        return choose_gl_backend()
    except UsageError as error:
        pytest.skip(f"no offscreen OpenGL backend on this machine: {error}")


def test_render_of_10_steps_writes_10_changing_frames(gl_backend: str, tmp_path: Path) -> None:
    video = tmp_path / "reach.mp4"
    done = run_neuroloop(
        "render",
        REACH,
        "-o",
        video,
        "--steps",
        "10",
        "--width",
        "64",
        "--height",
        "64",
        "--world",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {video}: 10 frames of world 1" in done.stdout
    frames = iio.imread(video)
    assert frames.shape == (10, 64, 64, 3)
    assert all(frame.std() > 1.0 for frame in frames)  # pictures, not blank frames
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).max() > 30  # the hand moves


def test_an_episode_video_ends_on_the_episodes_last_frame(gl_backend: str, tmp_path: Path) -> None:
    # Reach episodes last EPISODE_STEPS control steps; the frame after the last one already
    # shows the reset hand, so a one-episode video has exactly EPISODE_STEPS frames.
    from neuroloop.plugins.experiments.reach import EPISODE_STEPS

    video = tmp_path / "episode.mp4"  # a GIF merges repeated frames
    done = run_neuroloop(
        "render", REACH, "-o", video, "--episodes", "1", "--width", "32", "--height", "32"
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {video}: {EPISODE_STEPS} frames of world 0" in done.stdout
    assert iio.imread(video).shape[0] == EPISODE_STEPS


def test_gif_holds_the_frames_written(tmp_path: Path) -> None:
    frames = [np.full((8, 6, 3), 40 * i, np.uint8) for i in range(4)]
    write_video(tmp_path / "grey.gif", frames, fps=25.0)
    read = iio.imread(tmp_path / "grey.gif")
    assert read.shape[0] == 4
    assert [int(frame[..., 0].mean()) for frame in read] == [0, 40, 80, 120]


def test_a_video_file_must_be_mp4_or_gif() -> None:
    done = run_neuroloop("render", REACH, "-o", "reach.avi", "--steps", "1")
    assert done.returncode == 2
    assert "expected a video file ending in .mp4 or .gif" in done.stderr


MARKER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from neuroloop.plugins.engines.mujoco_engine import MujocoEngine

    engine = MujocoEngine("physics")
    engine.initialize({
        "EngineTimestep": 0.04,
        "ConfigDirectory": sys.argv[1],
        "EngineExtraConfigs": {
            "Model": "reach", "Body": "../experiments/bodies/shadow_hand.yaml", "Worlds": 2,
            "Camera": {"Width": 33, "Height": 33, "World": 1, "LookAt": [0, -0.07, 0.1],
                       "MarkerRadius": 0.01},
        },
    })
    engine.reset(0)
    engine.step(40_000_000)
    plain = engine.get_datapack("camera")
    palm = engine.get_datapack("palm_position")
    # Marker 0 (red) where the camera looks in world 1; world 0's marker is elsewhere.
    markers = np.zeros((2, 1, 3))
    markers[0, 0] = palm[0] + [0.2, 0, 0]
    markers[1, 0] = palm[1] + [0, -0.07, 0.1]
    engine.set_datapack("markers", markers)
    marked = engine.get_datapack("camera")
    engine.shutdown()
    print(json.dumps({"shape": list(marked.shape), "plain": plain[0, 16, 16].tolist(),
                      "marked": marked[0, 16, 16].tolist()}))
    """
)


def test_goal_markers_are_drawn_where_the_goal_is(gl_backend: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MARKER_SCRIPT, str(REPO / "simulation_configs")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["shape"] == [1, 33, 33, 3]  # only the chosen world is rendered
    red, green, blue = result["marked"]
    assert red > 150 and green < 60 and blue < 60, result
    assert result["plain"] != result["marked"]


def test_simulation_env_renders_rgb_arrays(gl_backend: str) -> None:
    from neuroloop.gym import SimulationEnv

    env = SimulationEnv(REACH, ONE_WORLD, render_mode="rgb_array", render_size=(48, 40))
    try:
        env.reset(seed=0)
        first = env.render()
        for _ in range(3):
            env.step(env.action_space.sample())
        later = env.render()
    finally:
        env.close()
    assert first is not None and later is not None
    assert first.shape == later.shape == (40, 48, 3)
    assert first.dtype == np.uint8
    assert not np.array_equal(first, later)
