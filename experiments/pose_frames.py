"""Frames of the Shadow Hand's block in random poses in the hand, labelled by the physics.

The pose frame generator of the ``manipulate_block`` task (``neuroloop pretrain vision``).
Each frame is made in the config's own model with its physics engine's ``Camera`` (the
Body file's ``View`` filled in), drawn by ``WorldCamera``:

1. a random hand posture: every actuator's target drawn uniformly in its control range,
   held while the hand settles (the block parked far away meanwhile);
2. the block dropped into the palm from a random point above it, in a uniformly random
   orientation, and left to settle briefly against the fingers;
3. domain randomisation: the lights' direction and intensity, the headlight, and the colour
   of every material and geom jittered; the goal marker hidden;
4. the picture, and the block's pose read from the physics: its position relative to the
   palm (the body the camera tracks, so camera and palm move together) and its orientation,
   both in world axes, which are the camera's fixed axes. Blocks that left the hand are
   drawn again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import yaml

from neuroloop.config import SimulationConfig, engine_extra_configs
from neuroloop.errors import UsageError
from neuroloop.plugins.engines import mujoco_engine
from neuroloop.plugins.engines.mujoco_camera import CameraSettings, WorldCamera
from neuroloop.pretrain.frames import PoseFrames, Progress

PHYSICS_TYPE = "mujoco"
OBJECT_BODY = "object"
PALM_BODY = "robot0:palm"
TARGET_BODY = "target"
"""The goal marker: hidden, it is not what the pose is read from."""
HAND_SETTLE_S = 0.2
"""Time the hand holds its drawn posture before the block comes."""
BLOCK_SETTLE_S = 0.06
"""Time the dropped block moves before the picture."""
PARKED = np.array([0.0, 0.0, -5.0])
"""Where the block waits while the hand settles (m): far from every geom."""
DROP_JITTER = np.array([0.02, 0.02, 0.02])
"""Half-range (m) of the drop point around the block's initial position, per axis."""
DROP_LIFT = 0.02
"""Height (m) above its initial position the block is dropped from, at the least."""
MAX_DISTANCE = 0.12
"""A block farther than this (m) from the palm left the hand; the frame is drawn again."""
MAX_TRIES = 20
"""Draws per frame before giving up on a model whose block never stays."""
LIGHT_INTENSITY = (0.4, 1.2)
"""Range of each light's diffuse intensity."""
HEADLIGHT_INTENSITY = (0.1, 0.6)
"""Range of the headlight's diffuse intensity."""
AMBIENT = (0.05, 0.3)
"""Range of the headlight's ambient intensity."""
DEFAULT_GEOM_RGBA = np.array([0.5, 0.5, 0.5, 1.0], dtype=np.float32)
"""MuJoCo's default geom rgba: such a geom with a material is drawn in the material's."""
COLOUR_JITTER = 0.25
"""Each RGB channel of each material and geom is scaled by 1 +- this."""
PROGRESS_EVERY = 50
"""Frames between progress calls."""


class HandScene:
    """The config's model, one world and its camera, and what the frames randomise."""

    def __init__(self, config: SimulationConfig) -> None:
        physics = [engine for engine in config.engines if engine.type == PHYSICS_TYPE]
        if len(physics) != 1:
            raise UsageError(
                f"{config.path}: expected one {PHYSICS_TYPE} engine to make frames with. "
                f"Received: {[engine.name for engine in physics]}"
            )
        section = physics[0].section
        context = f"[{physics[0].name}] pretrain"
        extra = engine_extra_configs(
            mujoco_engine.__file__, section.get("EngineExtraConfigs") or {}, context
        )
        if extra["Camera"] is None:
            raise UsageError(
                f"{config.path}: EngineConfigs.EngineName:{physics[0].name}.EngineExtraConfigs"
                f".Camera: expected the camera whose frames the brain sees. Received: none"
            )
        base = Path(section.get("ConfigDirectory") or config.directory)
        model_file = section.get("WorldFileName") or extra["Model"]
        self.model = mujoco.MjModel.from_xml_path(str(_model_path(model_file, base)))
        for body in (OBJECT_BODY, PALM_BODY):
            if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, body) < 0:
                raise UsageError(
                    f"{config.path}: the physics model {model_file!r}: expected a body "
                    f"{body!r} (the Shadow Hand's block). Received: none"
                )
        self.data = mujoco.MjData(self.model)
        self.camera = WorldCamera(
            self.model, CameraSettings.merge(extra["Camera"], _view(extra, base)), context
        )
        self._object_qpos = self.model.jnt_qposadr[self.model.body(OBJECT_BODY).jntadr[0]]
        self._object_dof = self.model.jnt_dofadr[self.model.body(OBJECT_BODY).jntadr[0]]
        mujoco.mj_forward(self.model, self.data)
        self._rest = np.array(self.data.qpos[self._object_qpos : self._object_qpos + 3])
        self._geom_rgba = np.array(self.model.geom_rgba)
        # A geom with a material and the default rgba takes the material's colour.
        self._own_colour = (self.model.geom_matid < 0) | np.any(
            self._geom_rgba != DEFAULT_GEOM_RGBA, axis=1
        )
        self._mat_rgba = np.array(self.model.mat_rgba)
        target = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, TARGET_BODY)
        self._hidden = np.flatnonzero((self.model.geom_bodyid == target) & (target >= 0))

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(Height, Width, 3)`` of a frame."""
        return (self.camera.settings.height, self.camera.settings.width, 3)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame, the block's position relative to the palm and its orientation.

        Raises:
            UsageError: If the block leaves the hand ``MAX_TRIES`` times in a row.
        """
        for _ in range(MAX_TRIES):
            self._pose_hand(rng)
            self._drop_block(rng)
            position = self.data.body(OBJECT_BODY).xpos - self.data.body(PALM_BODY).xpos
            if np.linalg.norm(position) <= MAX_DISTANCE:
                self._randomise_look(rng)
                frame = self.camera.render([self.data], None, _nothing)[0]
                rotation = self.data.body(OBJECT_BODY).xmat.reshape(3, 3)
                return frame, np.array(position), np.array(rotation)
        raise UsageError(
            f"pretrain: the block left the hand in {MAX_TRIES} draws in a row; expected a "
            f"model whose body {OBJECT_BODY!r} rests in the palm. Received: the last one "
            f"{np.linalg.norm(position):.3f} m from it"
        )

    def close(self) -> None:
        """Free the camera's OpenGL context."""
        self.camera.close()

    def _pose_hand(self, rng: np.random.Generator) -> None:
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        low, high = model.actuator_ctrlrange.T
        data.ctrl[:] = rng.uniform(low, high)
        self._place_block(PARKED, np.array([1.0, 0.0, 0.0, 0.0]))
        mujoco.mj_step(model, data, nstep=_steps(model, HAND_SETTLE_S))

    def _drop_block(self, rng: np.random.Generator) -> None:
        above = self._rest + rng.uniform(-DROP_JITTER, DROP_JITTER) + [0.0, 0.0, DROP_LIFT]
        quaternion = rng.normal(size=4)
        self._place_block(above, quaternion / np.linalg.norm(quaternion))
        mujoco.mj_step(self.model, self.data, nstep=_steps(self.model, BLOCK_SETTLE_S))
        mujoco.mj_forward(self.model, self.data)

    def _place_block(self, position: np.ndarray, quaternion: np.ndarray) -> None:
        start = self._object_qpos
        self.data.qpos[start : start + 3] = position
        self.data.qpos[start + 3 : start + 7] = quaternion
        self.data.qvel[self._object_dof : self._object_dof + 6] = 0.0

    def _randomise_look(self, rng: np.random.Generator) -> None:
        model = self.model
        own = self._own_colour
        model.geom_rgba[own, :3] = _jitter(self._geom_rgba[own, :3], rng)
        model.mat_rgba[:, :3] = _jitter(self._mat_rgba[:, :3], rng)
        model.geom_rgba[self._hidden, 3] = 0.0
        for light in range(model.nlight):
            direction = rng.normal(size=3)
            direction[2] = -abs(direction[2]) - 0.5  # from above
            model.light_dir[light] = direction / np.linalg.norm(direction)
            model.light_diffuse[light] = rng.uniform(*LIGHT_INTENSITY)
        model.vis.headlight.diffuse[:] = rng.uniform(*HEADLIGHT_INTENSITY)
        model.vis.headlight.ambient[:] = rng.uniform(*AMBIENT)


def block_pose_frames(
    config: SimulationConfig, count: int, seed: int, progress: Progress
) -> PoseFrames:
    """``count`` frames of the block in random poses in the hand (see the module's doc).

    Args:
        config: A Shadow Hand block config whose physics engine has a ``Camera``.
        count: Frames to make.
        seed: Seeds every random draw.
        progress: Called with frames done and wanted.
    """
    scene = HandScene(config)
    rng = np.random.default_rng(seed)
    frames = np.empty((count, *scene.frame_shape), dtype=np.uint8)
    positions = np.empty((count, 3))
    rotations = np.empty((count, 3, 3))
    started = time.perf_counter()
    try:
        for index in range(count):
            frames[index], positions[index], rotations[index] = scene.draw(rng)
            if (index + 1) % PROGRESS_EVERY == 0 or index + 1 == count:
                progress(index + 1, count)
    finally:
        scene.close()
    return PoseFrames(frames, positions, rotations, seconds=time.perf_counter() - started)


def _model_path(spec: str, base: Path) -> Path:
    path = Path(spec) if Path(spec).is_absolute() else base / spec
    if path.is_file():
        return path
    shipped = mujoco_engine.shipped_model_folder() / (
        spec if spec.endswith(".xml") else f"{spec}.xml"
    )
    if shipped.is_file():
        return shipped
    raise UsageError(
        f"pretrain: expected an MJCF file or one of the shipped models "
        f"{mujoco_engine.shipped_models()}. Received: {spec!r}"
    )


def _view(extra: dict[str, Any], base: Path) -> dict[str, Any]:
    """The Body file's ``View`` (empty without a Body file)."""
    if extra["Body"] is None:
        return {}
    path = Path(extra["Body"])
    body = yaml.safe_load((path if path.is_absolute() else base / path).read_text("utf-8"))
    return dict((body or {}).get("View") or {})


def _steps(model: mujoco.MjModel, seconds: float) -> int:
    return max(1, round(seconds / model.opt.timestep))


def _jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale = rng.uniform(1.0 - COLOUR_JITTER, 1.0 + COLOUR_JITTER, size=rgb.shape)
    return np.clip(rgb * scale, 0.0, 1.0)


def _nothing(world: int) -> None:
    """Nothing to prepare before a world is drawn."""
