"""MuJoCo physics engine: one MjModel, many MjData (worlds), stepped in one call.

The engine's section of a simulation config::

    {
      "EngineName": "physics",
      "EngineType": "mujoco",
      "EngineTimestep": 0.02,
      "EngineExtraConfigs": {
        "Model": "reach",
        "Worlds": 4
      }
    }

``Model`` is a path to an MJCF file or the name of a Shadow Hand model shipped with the
installed gymnasium-robotics package (``reach``, ``manipulate_block``,
``manipulate_block_touch_sensors``, ...; see ``shipped_models()``), loaded in place and never
copied. ``WorldFileName`` (NRP-core's key) may name the MJCF file instead. Relative paths are
resolved against ``ConfigDirectory``.

Every control step runs ``EngineTimestep / model.opt.timestep`` physics substeps with
``mujoco.mj_step(model, data, nstep=n)`` for each world. State is read through index arrays
computed once in ``initialize``, never by name per step.

Datapacks out (numpy, first axis = world ``W``; all ``float64`` unless noted):

====================== ============== ====================================================
name                   shape          content
====================== ============== ====================================================
joint_positions        [W, nj]        qpos of the 1-DoF (hinge, slide) joints, model order
joint_velocities       [W, nj]        qvel of the same joints
actuator_positions     [W, nu]        ``data.actuator_length`` (joint position for the
                                      hand's joint-transmission actuators)
touch                  [W, nt]        touch sensor readings, model sensor order
fingertip_positions    [W, 5, 3]      fingertip sites (ff, mf, rf, lf, th) in world frame;
                                      offered when the model has them
palm_position          [W, 3]         palm body position; offered when the model has it
object_pose            [W, 7]         free object position + quaternion (w, x, y, z);
                                      zeros when the model has no object
object_velocities      [W, 6]         free object linear velocity (world frame) and
                                      angular velocity (body frame), as in ``qvel``
actuator_ctrlrange     [nu, 2]        constant control bounds
camera                 [W, H, Wi, 3]  ``uint8`` RGB, only when ``Camera`` is configured
====================== ============== ====================================================

Datapacks in:

- ``ctrl`` ``[W, nu]``: actuator targets. The shape is checked and non-finite values are
  rejected with ``ValueError``. Values are passed to MuJoCo unchanged; MuJoCo clamps them to
  ``actuator_ctrlrange`` for control-limited actuators (all the Shadow Hand's), so the
  engine does not clip them itself. A control stays in force until the next ``ctrl``.
- ``reset_worlds`` ``[W]`` bool: worlds to restore to a fresh initial state at the start of
  the next step (after any ``ctrl`` of the same call, which they replace with the hold
  pose). Each world draws its initial state from its own generator, seeded by ``reset``,
  so a seeded run is repeatable. This is how an episode ends in one world of a batch.
- ``target_pose`` ``[W, 7]``: pose of the goal marker body (the shipped manipulate models'
  ``target``), offered when the model has one. The marker has a free joint but no
  collisions; the engine holds it at this pose (zero velocity) before every control step,
  so it only shows the goal in camera images.

MuJoCo's warning counters are checked after every step: bad qpos, qvel, qacc or ctrl
(simulation instability) raise ``PhysicsInstabilityError`` naming the engine and world;
contact or constraint buffer overflow and bad inertia are logged as warnings. MuJoCo errors
during a step (in MuJoCo 3 an exhausted memory arena is one, not a warning) raise
``PhysicsError`` naming the engine and world.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

try:
    import mujoco
except (AttributeError, ImportError) as _gl_error:  # MUJOCO_GL names a missing GL library
    raise ImportError(
        f"[mujoco_engine] import mujoco: expected MUJOCO_GL to name a usable OpenGL backend "
        f"(egl, osmesa, glfw) or to be unset. Received: MUJOCO_GL="
        f"{os.environ.get('MUJOCO_GL', '')!r}, {type(_gl_error).__name__}: {_gl_error}"
    ) from _gl_error

from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine, extra_configs, positive_int
from neuroloop.errors import EngineError

NS_PER_SECOND = 1_000_000_000
"""Nanoseconds per second: configs speak seconds, ``step`` speaks integer nanoseconds."""

TIMESTEP_RELATIVE_TOLERANCE = 1e-9
"""How far ``EngineTimestep / opt.timestep`` may be from a whole number (float rounding)."""

SHIPPED_MODEL_PACKAGE = "gymnasium_robotics"
"""The installed package whose Shadow Hand MJCF files ``Model`` may name."""

SHIPPED_MODEL_FOLDER = ("envs", "assets", "hand")
"""The folder of the Shadow Hand models inside ``SHIPPED_MODEL_PACKAGE``."""

ENTROPY_BITS = 128
"""Bits of fresh entropy drawn for ``reset(None)``."""

DEFAULT_WORLDS = 1
"""Worlds (MjData) per engine when ``Worlds`` is not given."""

DEFAULT_THREADS = 1
"""Threads stepping the worlds when ``Threads`` is not given (mj_step releases the GIL)."""

FINGERTIP_SITES = (
    "robot0:S_fftip",
    "robot0:S_mftip",
    "robot0:S_rftip",
    "robot0:S_lftip",
    "robot0:S_thtip",
)
"""Shadow Hand fingertip sites: first, middle, ring, little finger, thumb (thumb last)."""

PALM_BODY = "robot0:palm"
"""Shadow Hand palm body."""

OBJECT_BODY = "object"
"""Body with a free joint that the manipulate models' hand handles."""

TARGET_BODY = "target"
"""Collision-free goal marker body of the manipulate models."""

INITIAL_JOINT_NOISE = 0.02
"""Half-width (rad, or m for slide joints) of the uniform noise added to 1-DoF joints at reset."""

OBJECT_YAW_RANGE = math.pi
"""Half-width (rad) of the uniform yaw (about world z) added to the object's initial pose."""

FREE_JOINT_QPOS = 7
"""qpos entries of a free joint: position (3) and quaternion (4)."""

FREE_JOINT_QVEL = 6
"""qvel entries of a free joint: linear (3) and angular (3) velocity."""

DEFAULT_CAMERA_WIDTH = 64
"""Camera image width in pixels when ``Camera`` gives none."""

DEFAULT_CAMERA_HEIGHT = 64
"""Camera image height in pixels when ``Camera`` gives none."""

FREE_CAMERA_LOOKAT = (1.0, 0.96, 0.14)
"""Point (m) the free camera looks at: the Shadow Hand's palm in the shipped models."""

FREE_CAMERA_DISTANCE = 0.5
"""Distance (m) of the free camera from its look-at point."""

FREE_CAMERA_AZIMUTH = 55.0
"""Azimuth (deg) of the free camera."""

FREE_CAMERA_ELEVATION = -25.0
"""Elevation (deg) of the free camera."""

INSTABILITY_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADCTRL,
)
"""MuJoCo warnings that mean the simulation blew up: raised as PhysicsInstabilityError."""

LOGGED_WARNINGS = (
    mujoco.mjtWarning.mjWARN_INERTIA,
    mujoco.mjtWarning.mjWARN_CONTACTFULL,
    mujoco.mjtWarning.mjWARN_CNSTRFULL,
)
"""MuJoCo warnings that degrade the simulation without breaking it: logged."""

EXTRA_CONFIG_KEYS = (
    "Model",
    "Worlds",
    "Threads",
    "Camera",
    "InitialJointPositions",
)
"""Keys this engine understands in ``EngineExtraConfigs``."""

CAMERA_KEYS = ("Name", "Width", "Height")
"""Keys of ``EngineExtraConfigs.Camera``; without ``Name`` a free camera is used."""

GL_ERRORS = (mujoco.FatalError, AttributeError, ImportError, OSError, RuntimeError)
"""What creating an offscreen renderer raises when no OpenGL backend is usable."""


class PhysicsError(EngineError):
    """MuJoCo failed while stepping a world (e.g. its memory arena ran out)."""


class PhysicsInstabilityError(PhysicsError):
    """MuJoCo reported bad positions, velocities, accelerations or controls in a world."""


def shipped_model_folder() -> Path:
    """Return the folder of the Shadow Hand models in the installed gymnasium-robotics.

    The package is located without importing it (its import registers environments).

    Raises:
        ValueError: If gymnasium-robotics is not installed.
    """
    spec = importlib.util.find_spec(SHIPPED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"shipped models: expected the {SHIPPED_MODEL_PACKAGE} package to be installed. "
            f"Received: not found"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*SHIPPED_MODEL_FOLDER)


def shipped_models() -> list[str]:
    """Names (file stems) of the loadable Shadow Hand models shipped with gymnasium-robotics.

    Only top-level models (with a ``<worldbody>``) are listed, not the files they include.
    """
    folder = shipped_model_folder()
    return sorted(
        path.stem
        for path in folder.glob("*.xml")
        if "<worldbody>" in path.read_text(encoding="utf-8")
    )


class MujocoEngine(Engine):
    """MuJoCo physics for a batch of worlds sharing one model.

    Args:
        name: The engine's name in the simulation config; errors and logs use it.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._log = logging.getLogger(f"{__name__}.{name}")
        self._names: tuple[str, ...] = ()
        self._model: mujoco.MjModel | None = None
        self._datas: list[mujoco.MjData] = []
        self._pool: ThreadPoolExecutor | None = None
        self._renderer: mujoco.Renderer | None = None
        self._camera: mujoco.MjvCamera | int | str = -1
        self._camera_frame: np.ndarray | None = None

    # ------------------------------------------------------------------ lifecycle

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Load the model, allocate the worlds and compute every index array.

        Args:
            config: The engine's section of the simulation config (see the module docstring).

        Raises:
            ValueError: If a key is missing or malformed, the model cannot be loaded, or the
                engine timestep is not a whole number of physics timesteps.
            EngineError: If a camera is configured and no OpenGL backend is usable.
        """
        context = f"[{self.name}] initialize"
        extra = extra_configs(config, EXTRA_CONFIG_KEYS, context)
        path = self._model_path(config, extra, context)
        try:
            model = mujoco.MjModel.from_xml_path(str(path))
        except ValueError as error:
            raise ValueError(f"{context}: cannot load MJCF {path}: {error}") from None
        self._model = model
        self._substeps, self._physics_ns = self._substeps_for(config, model, context)

        n_worlds = positive_int(extra.get("Worlds", DEFAULT_WORLDS), context, "Worlds")
        n_threads = positive_int(extra.get("Threads", DEFAULT_THREADS), context, "Threads")
        self.shutdown()
        self._datas = [mujoco.MjData(model) for _ in range(n_worlds)]
        if n_threads > 1 and n_worlds > 1:
            self._pool = ThreadPoolExecutor(
                max_workers=min(n_threads, n_worlds), thread_name_prefix=f"{self.name}-world"
            )

        self._index(model, context)
        self._initial_qpos = self._initial_positions(model, extra, context)
        self._warning_counts = self.warning_counts()

        names = [
            "joint_positions",
            "joint_velocities",
            "actuator_positions",
            "touch",
            "object_pose",
            "object_velocities",
            "actuator_ctrlrange",
            "ctrl",
        ]
        if self._fingertip_ids.size:
            names.append("fingertip_positions")
        if self._palm_id >= 0:
            names.append("palm_position")
        if self._target_qpos >= 0:
            names.append("target_pose")
        camera = extra.get("Camera")
        if camera is not None:
            self._open_camera(model, camera, context)
            names.append("camera")
        names.append("reset_worlds")
        self._names = tuple(names)
        self._pending_resets = np.zeros(n_worlds, dtype=bool)
        self._seed_worlds(None)
        for world in range(n_worlds):
            self._reset_world(world, None)

    def reset(self, seed: int | None) -> None:
        """Restore every world to its initial state with seeded noise.

        World ``i`` draws from ``numpy.random.default_rng([seed, i])``: uniform noise of
        ``INITIAL_JOINT_NOISE`` on the 1-DoF joints (kept inside limited joints' ranges) and,
        when the model has a free object, a uniform yaw within ``OBJECT_YAW_RANGE``.
        Controls are set to hold the new pose (``ctrl`` = actuator length, clipped to the
        control range). ``seed=None`` draws fresh entropy.

        Args:
            seed: Non-negative integer that makes the initial states repeatable, or ``None``.

        Raises:
            ValueError: If the seed is negative or not an integer, or before ``initialize``.
        """
        self._require_model("reset")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(
                f"[{self.name}] reset: expected a non-negative integer seed or None. "
                f"Received: seed={seed!r}"
            )
        self._seed_worlds(seed)
        for world in range(len(self._datas)):
            self._reset_world(world, self._rngs[world])
        self._pending_resets[:] = False

    def step(self, timestep_ns: int) -> None:
        """Advance every world by ``timestep_ns`` (a whole number of physics timesteps).

        Raises:
            ValueError: If ``timestep_ns`` is not a positive multiple of the physics timestep.
            PhysicsInstabilityError: If MuJoCo reports an unstable simulation in any world.
            PhysicsError: If MuJoCo fails in any world (e.g. its memory arena runs out).
        """
        model = self._require_model("step")
        for flagged in np.flatnonzero(self._pending_resets):
            self._reset_world(int(flagged), self._rngs[flagged])
        self._pending_resets[:] = False
        if timestep_ns == self._substeps * self._physics_ns:
            nstep = self._substeps
        else:
            nstep, remainder = divmod(timestep_ns, self._physics_ns)
            if remainder or nstep < 1:
                raise ValueError(
                    f"[{self.name}] step: expected a whole multiple of the physics timestep "
                    f"{self._physics_ns} ns (opt.timestep={model.opt.timestep} s). "
                    f"Received: timestep_ns={timestep_ns}"
                )

        def advance(world: int) -> None:
            self._hold_target(world)
            try:
                mujoco.mj_step(model, self._datas[world], nstep=nstep)
            except mujoco.FatalError as error:
                raise PhysicsError(
                    f"[{self.name}] step: MuJoCo failed in world {world} at "
                    f"t={self._datas[world].time:.4f} s; reset the engine (for arena overflow, "
                    f"raise <size memory=...> in the MJCF). Received: {error}"
                ) from None

        if self._pool is None:
            for world in range(len(self._datas)):
                advance(world)
        else:
            list(self._pool.map(advance, range(len(self._datas))))
        self._camera_frame = None
        self._check_warnings()

    def shutdown(self) -> None:
        """Close the renderer and the stepping threads."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ------------------------------------------------------------------ datapacks

    @property
    def datapack_names(self) -> Sequence[str]:
        return self._names

    @property
    def n_worlds(self) -> int:
        """Number of worlds (MjData) this engine steps."""
        return len(self._datas)

    @property
    def substeps(self) -> int:
        """Physics substeps per ``EngineTimestep``."""
        return self._substeps

    def warning_counts(self) -> np.ndarray:
        """MuJoCo's warning counters ``[W, mjNWARNING]`` (``int64``) since the last reset."""
        return np.array([data.warning.number for data in self._datas], dtype=np.int64)

    def get_datapack(self, name: str) -> DataPackValue:
        if name not in self._names:
            raise ValueError(
                f"[{self.name}] get: expected one of this engine's datapacks "
                f"({', '.join(self._names) or 'none: not initialized'}). Received: {name!r}"
            )
        datas = self._datas
        if name == "joint_positions":
            return np.array([data.qpos[self._joint_qpos] for data in datas])
        if name == "joint_velocities":
            return np.array([data.qvel[self._joint_dof] for data in datas])
        if name == "actuator_positions":
            return np.array([data.actuator_length for data in datas])
        if name == "touch":
            return np.array([data.sensordata[self._touch_adr] for data in datas])
        if name == "fingertip_positions":
            return np.array([data.site_xpos[self._fingertip_ids] for data in datas])
        if name == "palm_position":
            return np.array([data.xpos[self._palm_id] for data in datas])
        if name == "object_pose":
            if self._object_qpos < 0:
                return np.zeros((len(datas), FREE_JOINT_QPOS))
            qpos = slice(self._object_qpos, self._object_qpos + FREE_JOINT_QPOS)
            return np.array([data.qpos[qpos] for data in datas])
        if name == "object_velocities":
            if self._object_dof < 0:
                return np.zeros((len(datas), FREE_JOINT_QVEL))
            qvel = slice(self._object_dof, self._object_dof + FREE_JOINT_QVEL)
            return np.array([data.qvel[qvel] for data in datas])
        if name == "actuator_ctrlrange":
            return np.array(self._require_model("get actuator_ctrlrange").actuator_ctrlrange)
        if name == "ctrl":
            return np.array([data.ctrl for data in datas])
        if name == "target_pose":
            return self._target_pose.copy()
        if name == "reset_worlds":
            return self._pending_resets.copy()
        return self._render()  # "camera": the only datapack name left

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        if name == "reset_worlds":
            flags = np.asarray(value)
            if flags.shape != self._pending_resets.shape or flags.dtype.kind not in "bi":
                raise ValueError(
                    f"[{self.name}] datapack 'reset_worlds': expected booleans of shape "
                    f"{self._pending_resets.shape}. Received: {flags.dtype} {flags.shape}"
                )
            self._pending_resets |= flags.astype(bool)
            return
        if name == "ctrl":
            model = self._require_model("set ctrl")
            ctrl = self._finite_array(name, value, (len(self._datas), model.nu))
            for data, row in zip(self._datas, ctrl, strict=True):
                data.ctrl[:] = row
            return
        if name == "target_pose" and "target_pose" in self._names:
            pose = self._finite_array(name, value, (len(self._datas), FREE_JOINT_QPOS))
            norms = np.linalg.norm(pose[:, 3:], axis=1, keepdims=True)
            if np.any(norms == 0.0):
                raise ValueError(
                    f"[{self.name}] set target_pose: expected non-zero quaternions "
                    f"(columns 3..6). Received: a zero quaternion in worlds "
                    f"{np.flatnonzero(norms[:, 0] == 0.0).tolist()}"
                )
            pose[:, 3:] /= norms
            self._target_pose = pose
            self._camera_frame = None
            return
        raise ValueError(
            f"[{self.name}] set: expected one of the datapacks this engine accepts "
            f"(ctrl, reset_worlds{', target_pose' if 'target_pose' in self._names else ''}). "
            f"Received: {name!r}"
        )

    # ------------------------------------------------------------------ helpers

    def _require_model(self, verb: str) -> mujoco.MjModel:
        if self._model is None:
            raise ValueError(f"[{self.name}] {verb}: expected initialize() first. Received: none")
        return self._model

    def _model_path(
        self, config: Mapping[str, Any], extra: Mapping[str, Any], context: str
    ) -> Path:
        world_file = config.get("WorldFileName")
        model = extra.get("Model")
        if world_file and model:
            raise ValueError(
                f"{context}: expected either WorldFileName or EngineExtraConfigs.Model, not "
                f"both. Received: WorldFileName={world_file!r}, Model={model!r}"
            )
        spec = world_file or model
        if not spec or not isinstance(spec, str):
            raise ValueError(
                f"{context}: expected WorldFileName or EngineExtraConfigs.Model (an MJCF path "
                f"or one of {shipped_models()}). Received: {spec!r}"
            )
        base = Path(config.get("ConfigDirectory") or Path.cwd())
        path = Path(spec) if Path(spec).is_absolute() else base / spec
        if path.is_file():
            return path
        if world_file is None:
            shipped = shipped_model_folder() / (spec if spec.endswith(".xml") else f"{spec}.xml")
            if shipped.is_file() and Path(spec).name == spec:
                return shipped
        raise ValueError(
            f"{context}: expected an MJCF file or one of the shipped models {shipped_models()}. "
            f"Received: {spec!r} (looked for {path})"
        )

    def _substeps_for(
        self, config: Mapping[str, Any], model: mujoco.MjModel, context: str
    ) -> tuple[int, int]:
        physics_dt = float(model.opt.timestep)
        physics_ns = round(physics_dt * NS_PER_SECOND)
        if abs(physics_ns - physics_dt * NS_PER_SECOND) > 1e-3:
            raise ValueError(
                f"{context}: expected the model's opt.timestep to be a whole number of "
                f"nanoseconds. Received: opt.timestep={physics_dt}"
            )
        engine_dt = config.get("EngineTimestep")
        if isinstance(engine_dt, bool) or not isinstance(engine_dt, int | float) or engine_dt <= 0:
            raise ValueError(
                f"{context}: expected EngineTimestep to be a positive number of seconds. "
                f"Received: EngineTimestep={engine_dt!r}"
            )
        ratio = engine_dt / physics_dt
        substeps = round(ratio)
        if substeps < 1 or abs(ratio - substeps) > TIMESTEP_RELATIVE_TOLERANCE * ratio:
            raise ValueError(
                f"{context}: expected EngineTimestep to be a whole multiple of the model's "
                f"opt.timestep={physics_dt} s. Received: EngineTimestep={engine_dt} s "
                f"(ratio {ratio:.6g})"
            )
        return substeps, physics_ns

    def _index(self, model: mujoco.MjModel, context: str) -> None:
        """Compute once every index array the datapacks read through."""
        scalar = np.isin(model.jnt_type, (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE))
        self._joints = np.flatnonzero(scalar)
        self._joint_qpos = model.jnt_qposadr[self._joints].copy()
        self._joint_dof = model.jnt_dofadr[self._joints].copy()
        self._joint_noise_low = np.full(self._joints.size, -np.inf)
        self._joint_noise_high = np.full(self._joints.size, np.inf)
        limited = model.jnt_limited[self._joints].astype(bool)
        self._joint_noise_low[limited] = model.jnt_range[self._joints[limited], 0]
        self._joint_noise_high[limited] = model.jnt_range[self._joints[limited], 1]

        touch = np.flatnonzero(model.sensor_type == mujoco.mjtSensor.mjSENS_TOUCH)
        self._touch_adr = model.sensor_adr[touch].copy()

        site_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, n) for n in FINGERTIP_SITES]
        self._fingertip_ids = np.array(site_ids if min(site_ids) >= 0 else [], dtype=np.int64)
        self._palm_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, PALM_BODY)

        self._object_qpos, self._object_dof = self._free_joint(model, OBJECT_BODY, context)
        self._target_qpos, self._target_dof = self._free_joint(model, TARGET_BODY, context)
        self._target_pose = np.zeros((len(self._datas), FREE_JOINT_QPOS))
        if self._target_qpos >= 0:
            initial = model.qpos0[self._target_qpos : self._target_qpos + FREE_JOINT_QPOS]
            self._target_pose[:] = initial

        ctrlrange = model.actuator_ctrlrange
        self._hold_low = np.where(model.actuator_ctrllimited.astype(bool), ctrlrange[:, 0], -np.inf)
        self._hold_high = np.where(model.actuator_ctrllimited.astype(bool), ctrlrange[:, 1], np.inf)

    @staticmethod
    def _free_joint(model: mujoco.MjModel, body_name: str, context: str) -> tuple[int, int]:
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body_name)
        if body < 0 or model.body_jntnum[body] == 0:
            return -1, -1
        joint = model.body_jntadr[body]
        if model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(
                f"{context}: expected body {body_name!r} to have a free joint. "
                f"Received: joint type {mujoco.mjtJoint(model.jnt_type[joint]).name}"
            )
        return int(model.jnt_qposadr[joint]), int(model.jnt_dofadr[joint])

    def _initial_positions(
        self, model: mujoco.MjModel, extra: Mapping[str, Any], context: str
    ) -> np.ndarray:
        qpos = model.qpos0.copy()
        given = extra.get("InitialJointPositions") or {}
        if not isinstance(given, Mapping):
            raise ValueError(
                f"{context}: expected InitialJointPositions to map joint names to positions. "
                f"Received: {given!r}"
            )
        for joint_name, value in given.items():
            joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint_name)
            if joint < 0 or joint not in self._joints:
                raise ValueError(
                    f"{context}: expected InitialJointPositions keys to name hinge or slide "
                    f"joints of the model. Received: {joint_name!r}"
                )
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(
                    f"{context}: expected InitialJointPositions.{joint_name} to be a finite "
                    f"number. Received: {value!r}"
                )
            qpos[model.jnt_qposadr[joint]] = value
        return qpos

    def _open_camera(self, model: mujoco.MjModel, camera: Any, context: str) -> None:
        if not isinstance(camera, Mapping) or set(camera) - set(CAMERA_KEYS):
            raise ValueError(
                f"{context}: expected Camera to be an object with keys among "
                f"{list(CAMERA_KEYS)}. Received: Camera={camera!r}"
            )
        width = positive_int(camera.get("Width", DEFAULT_CAMERA_WIDTH), context, "Camera.Width")
        height = positive_int(camera.get("Height", DEFAULT_CAMERA_HEIGHT), context, "Camera.Height")
        name = camera.get("Name")
        if name is None:
            free = mujoco.MjvCamera()
            free.type = mujoco.mjtCamera.mjCAMERA_FREE
            free.lookat[:] = FREE_CAMERA_LOOKAT
            free.distance = FREE_CAMERA_DISTANCE
            free.azimuth = FREE_CAMERA_AZIMUTH
            free.elevation = FREE_CAMERA_ELEVATION
            self._camera = free
        else:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
                cameras = [model.camera(i).name for i in range(model.ncam)]
                raise ValueError(
                    f"{context}: expected Camera.Name to be one of the model's cameras "
                    f"{cameras} or absent (free camera). Received: {name!r}"
                )
            self._camera = name
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        try:
            self._renderer = mujoco.Renderer(model, height=height, width=width)
        except GL_ERRORS as error:
            raise EngineError(
                f"{context}: Camera needs an OpenGL backend for offscreen rendering; set "
                f"MUJOCO_GL=egl (GPU or Mesa EGL) or MUJOCO_GL=osmesa (software) before the "
                f"engine process starts. Received: MUJOCO_GL="
                f"{os.environ.get('MUJOCO_GL', '')!r}, "
                f"{type(error).__name__}: {error}"
            ) from None

    def _render(self) -> np.ndarray:
        if self._renderer is None:
            raise ValueError(f"[{self.name}] get camera: expected a configured Camera")
        if self._camera_frame is None:
            model = self._require_model("get camera")
            frames = []
            for world, data in enumerate(self._datas):
                if self._target_qpos >= 0:
                    self._hold_target(world)
                    mujoco.mj_kinematics(model, data)
                    mujoco.mj_camlight(model, data)
                self._renderer.update_scene(data, camera=self._camera)
                frames.append(self._renderer.render())
            self._camera_frame = np.stack(frames)
        return self._camera_frame.copy()

    def _hold_target(self, world: int) -> None:
        """Put world ``world``'s goal marker at its target pose, at rest."""
        if self._target_qpos < 0:
            return
        data = self._datas[world]
        start, dof = self._target_qpos, self._target_dof
        data.qpos[start : start + FREE_JOINT_QPOS] = self._target_pose[world]
        data.qvel[dof : dof + FREE_JOINT_QVEL] = 0.0

    def _seed_worlds(self, seed: int | None) -> None:
        """One generator per world, ``default_rng([seed, world])`` (fresh entropy for None)."""
        entropy = secrets.randbits(ENTROPY_BITS) if seed is None else seed
        self._rngs = [np.random.default_rng([entropy, world]) for world in range(len(self._datas))]

    def _reset_world(self, world: int, rng: np.random.Generator | None) -> None:
        model = self._require_model("reset")
        data = self._datas[world]
        mujoco.mj_resetData(model, data)
        data.qpos[:] = self._initial_qpos
        if rng is not None:
            noise = rng.uniform(-INITIAL_JOINT_NOISE, INITIAL_JOINT_NOISE, self._joints.size)
            data.qpos[self._joint_qpos] = np.clip(
                data.qpos[self._joint_qpos] + noise, self._joint_noise_low, self._joint_noise_high
            )
            if self._object_qpos >= 0:
                yaw = rng.uniform(-OBJECT_YAW_RANGE, OBJECT_YAW_RANGE)
                spin = np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
                quat = slice(self._object_qpos + 3, self._object_qpos + FREE_JOINT_QPOS)
                turned = np.empty(4)
                mujoco.mju_mulQuat(turned, spin, data.qpos[quat])
                data.qpos[quat] = turned
        if self._target_qpos >= 0:
            initial = self._initial_qpos[self._target_qpos : self._target_qpos + FREE_JOINT_QPOS]
            self._target_pose[world] = initial
        self._hold_target(world)
        try:
            mujoco.mj_forward(model, data)
        except mujoco.FatalError as error:
            raise PhysicsError(
                f"[{self.name}] reset: MuJoCo failed in world {world}; for arena overflow, "
                f"raise <size memory=...> in the MJCF. Received: {error}"
            ) from None
        data.ctrl[:] = np.clip(data.actuator_length, self._hold_low, self._hold_high)
        self._warning_counts[world] = 0
        self._camera_frame = None

    def _finite_array(self, name: str, value: DataPackValue, shape: tuple[int, ...]) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"[{self.name}] set {name}: expected a numeric array of shape {shape}. "
                f"Received: dtype={array.dtype}"
            )
        if array.shape != shape:
            raise ValueError(
                f"[{self.name}] set {name}: expected shape {shape} (worlds, values). "
                f"Received: shape {array.shape}"
            )
        array = array.astype(np.float64)
        bad = ~np.isfinite(array)
        if bad.any():
            worlds = sorted(set(np.nonzero(bad)[0].tolist()))
            raise ValueError(
                f"[{self.name}] set {name}: expected finite values. Received: NaN or inf in "
                f"worlds {worlds}"
            )
        return array

    def _check_warnings(self) -> None:
        counts = self.warning_counts()
        if not counts.any() and not self._warning_counts.any():
            return
        unstable = []
        for world, (now, before) in enumerate(zip(counts, self._warning_counts, strict=True)):
            data = self._datas[world]
            for warning in LOGGED_WARNINGS:
                if now[warning] != before[warning] and now[warning] > 0:
                    self._log.warning(
                        "[%s] step: MuJoCo %s in world %d at t=%.4f s (count %d, info %d)",
                        self.name,
                        warning.name,
                        world,
                        data.time,
                        now[warning],
                        data.warning[warning].lastinfo,
                    )
            for warning in INSTABILITY_WARNINGS:
                if now[warning] > 0:
                    unstable.append(
                        f"world {world}: {warning.name} (count {now[warning]}, "
                        f"info {data.warning[warning].lastinfo}) at t={data.time:.4f} s"
                    )
        self._warning_counts = counts
        if unstable:
            raise PhysicsInstabilityError(
                f"[{self.name}] step: MuJoCo simulation unstable; reset the engine. "
                f"Received: {'; '.join(unstable)}"
            )
