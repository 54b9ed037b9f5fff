"""MuJoCo physics engine: one MjModel, many MjData (worlds), stepped in one call.

The engine knows MuJoCo, not bodies. Its ``EngineExtraConfigs`` are described, key by key,
in ``mujoco_engine.schema.json`` next to this file; a body's named datapacks (``Publish``)
and goal markers (``Hold``) are declared there or in a ``Body`` description file such as
``experiments/bodies/shadow_hand.yaml``, so a new MJCF body needs no engine edit.

Every control step runs ``EngineTimestep / model.opt.timestep`` physics substeps with
``mujoco.mj_step(model, data, nstep=n)`` for each world; datapacks are read through index
tables built once in ``initialize``.

Always available (first axis = world ``W``, ``float64``): ``qpos``, ``qvel``, ``ctrl``,
``actuator_length``, ``actuator_velocity``, ``actuator_force``, ``act`` (muscle and other
actuator activations), ``sensordata`` and ``time`` ``[W]``; the constants
``actuator_ctrlrange`` ``[nu, 2]`` and ``joint_range`` ``[njnt, 2]`` (no world axis: read
them once); ``camera`` ``[W, H, Wi, 3]`` ``uint8`` when ``Camera`` is configured (``[1, H,
Wi, 3]`` with ``Camera.World``: only that world is rendered; see ``mujoco_camera``).

Datapacks in: ``ctrl`` ``[W, nu]`` (checked for shape and finiteness; MuJoCo clamps
control-limited actuators), ``reset_worlds`` ``[W]`` bool (restart these worlds at the start
of the next step, each from its own seeded generator), every declared ``Hold`` pose, and
``markers`` ``[W, M, 3]`` (goal positions drawn as spheres into camera pictures only; they
stay until replaced and never touch the physics).

``DomainRandomization`` (off by default; see ``mujoco_randomization``) gives each world, at
every seeded reset, its own scaled model parameters, observation noise and action delay, and
adds the datapack ``domain_randomization`` ``[W, K]`` reporting the draws.

MuJoCo's warning counters are checked after every step: bad qpos, qvel, qacc or ctrl raise
``PhysicsInstabilityError`` naming the engine and world; contact or constraint buffer
overflow and bad inertia are logged. MuJoCo errors during a step raise ``PhysicsError``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import numpy as np
import yaml

try:
    import mujoco
except (AttributeError, ImportError) as _gl_error:  # MUJOCO_GL names a missing GL library
    raise ImportError(
        f"[mujoco_engine] import mujoco: expected MUJOCO_GL to name a usable OpenGL backend "
        f"(egl, osmesa, glfw) or to be unset. Received: MUJOCO_GL="
        f"{os.environ.get('MUJOCO_GL', '')!r}, {type(_gl_error).__name__}: {_gl_error}"
    ) from _gl_error

from neuroloop.config import engine_extra_configs
from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine
from neuroloop.errors import EngineError
from neuroloop.plugins.engines.mujoco_camera import CameraSettings, WorldCamera
from neuroloop.plugins.engines.mujoco_randomization import (
    ActionDelayLine,
    DomainRandomizer,
    Draw,
)

NS_PER_SECOND = 1_000_000_000
"""Nanoseconds per second: configs speak seconds, ``step`` speaks integer nanoseconds."""

TIMESTEP_RELATIVE_TOLERANCE = 1e-9
"""How far ``EngineTimestep / opt.timestep`` may be from a whole number (float rounding)."""

NS_ROUNDING_TOLERANCE = 1e-3
"""How far (ns) ``opt.timestep`` may be from a whole number of nanoseconds."""

SCHEMA_FILE = Path(__file__).with_name(f"{Path(__file__).stem}.schema.json")
"""The JSON Schema of this engine's ``EngineExtraConfigs`` (and of its Body files)."""

SHIPPED_MODEL_PACKAGE = "gymnasium_robotics"
"""The installed package whose Shadow Hand MJCF files ``Model`` may name."""

SHIPPED_MODEL_FOLDER = ("envs", "assets", "hand")
"""The folder of the Shadow Hand models inside ``SHIPPED_MODEL_PACKAGE``."""

ENTROPY_BITS = 128
"""Bits of fresh entropy drawn for ``reset(None)``."""

NOISE_STREAM = 1
"""Third seed word of each world's observation-noise generator, ``default_rng([seed, world,
NOISE_STREAM])``: noise read at every step does not shift the reset draws."""

FREE_JOINT_QPOS = 7
"""qpos entries of a free joint: position (3) and quaternion (4)."""

FREE_JOINT_QVEL = 6
"""qvel entries of a free joint: linear (3) and angular (3) velocity."""

QUATERNION = slice(3, 7)
"""Quaternion columns of a free joint's qpos."""

QPOS_WIDTH = (7, 4, 1, 1)
"""qpos entries of a joint by ``mjtJoint`` (free, ball, slide, hinge)."""

DOF_WIDTH = (6, 3, 1, 1)
"""Degrees of freedom of a joint by ``mjtJoint`` (free, ball, slide, hinge)."""

SCALAR_JOINTS = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
"""Joint types with one qpos entry: the ones ``JointNoise`` and ``InitialJointPositions`` set."""

ROTATING_JOINTS = (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_BALL)
"""Joint types with a quaternion: the ones ``RotationNoise`` turns."""

GENERIC_DATAPACKS = MappingProxyType(
    {
        "qpos": "qpos",
        "qvel": "qvel",
        "ctrl": "ctrl",
        "actuator_length": "actuator_length",
        "actuator_velocity": "actuator_velocity",
        "actuator_force": "actuator_force",
        "act": "act",
        "sensordata": "sensordata",
        "time": "time",
    }
)
"""Datapacks every model offers, by the MjData field they read whole."""

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

MARKER_COORDINATES = 3
"""Columns of a goal marker in the ``markers`` datapack: x, y, z (m, world frame)."""

MEMINFO = "/proc/meminfo"
WORLD_MEMORY_FACTOR = 4
"""Memory of a world as a multiple of its MjData buffer and used arena (measured: about 0.6
MiB per Shadow Hand world, 4x its 0.15 MiB of buffer and arena)."""


def physics_steps(timestep_ns: int, model: mujoco.MjModel, context: str) -> int:
    """How many of ``model``'s physics timesteps make ``timestep_ns``.

    Raises:
        ValueError: If ``timestep_ns`` is not a positive whole multiple of ``opt.timestep``.
    """
    physics_ns = round(float(model.opt.timestep) * NS_PER_SECOND)
    nstep, remainder = divmod(timestep_ns, physics_ns)
    if remainder or nstep < 1:
        raise ValueError(
            f"{context}: expected a whole multiple of the physics timestep {physics_ns} ns "
            f"(opt.timestep={model.opt.timestep} s). Received: timestep_ns={timestep_ns}"
        )
    return int(nstep)


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


def validate(instance: Any, schema: Mapping[str, Any], where: str, context: str) -> None:
    """Check a body file against the schema's ``Body``; the first error names ``where`` and
    the key (``EngineExtraConfigs`` themselves are checked by ``engine_extra_configs``).

    Raises:
        ValueError: ``"{context}: {where}.Key: expected ... Received: ..."``.
    """
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(instance)
    )
    if error is None:
        return
    path = "".join(f".{part}" for part in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        raise ValueError(
            f"{context}: {where}{path} keys: expected keys among {allowed}. Received: {unknown}"
        )
    if error.validator in ("oneOf", "anyOf"):
        expected = error.schema.get("description", "one of the forms in the schema")
    else:
        expected = f"{error.validator} {json.dumps(error.validator_value)}"
    raise ValueError(f"{context}: {where}{path}: expected {expected}. Received: {error.instance!r}")


def _available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (``MemAvailable``)."""
    for line in Path(MEMINFO).read_text(encoding="ascii").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _check_memory(
    model: mujoco.MjModel, n_worlds: int, context: str, own_models: bool = False
) -> None:
    """Refuse, before allocating them, more worlds than the available memory holds.

    One probe world is stepped once; a world's need is estimated as its data buffer plus
    the arena it used, times ``WORLD_MEMORY_FACTOR`` (allocator pages and Python objects),
    plus a copy of the model if worlds own one (``own_models``, domain randomisation).
    """
    probe = mujoco.MjData(model)
    try:
        mujoco.mj_step(model, probe)
        arena = probe.maxuse_arena
    except mujoco.FatalError:  # the worlds' own reset reports it, naming the world
        arena = probe.narena
    per_world = (probe.nbuffer + arena) * WORLD_MEMORY_FACTOR
    per_world += mujoco.mj_sizeModel(model) if own_models else 0
    available = _available_memory()
    if n_worlds * per_world > available:
        raise ValueError(
            f"{context}: EngineExtraConfigs.Worlds: expected at most "
            f"{available // per_world} worlds of this model in the "
            f"{available / 2**30:.1f} GiB of available memory (about "
            f"{per_world / 2**20:.2f} MiB each). Received: Worlds={n_worlds}"
        )


def _joint_ranges(model: mujoco.MjModel, field: str, ids: np.ndarray) -> tuple[Any, Any]:
    if field == "qpos":
        return model.jnt_qposadr[ids], np.asarray(QPOS_WIDTH)[model.jnt_type[ids]]
    return model.jnt_dofadr[ids], np.asarray(DOF_WIDTH)[model.jnt_type[ids]]


def _sensor_ranges(model: mujoco.MjModel, field: str, ids: np.ndarray) -> tuple[Any, Any]:
    return model.sensor_adr[ids], model.sensor_dim[ids]


def _actuator_ranges(model: mujoco.MjModel, field: str, ids: np.ndarray) -> tuple[Any, Any]:
    if field == "act":
        return model.actuator_actadr[ids], model.actuator_actnum[ids]
    return ids, np.ones_like(ids)


@dataclass(frozen=True)
class ElementKind:
    """How a ``Publish`` group selects MuJoCo elements of one kind and reads their fields."""

    obj: mujoco.mjtObj
    """MuJoCo object type, for ``mj_name2id``."""
    count: str
    """MjModel attribute counting the elements (``njnt``)."""
    fields: tuple[str, ...]
    """MjData fields the group may read; the first is the default."""
    ranges: Callable[[mujoco.MjModel, str, np.ndarray], tuple[Any, Any]] | None = None
    """``(starts, widths)`` of each element in a flat field; ``None``: one row per element."""
    type_attr: str | None = None
    """MjModel attribute holding each element's type, for ``{"type": [...]}`` selections."""
    type_enum: Any = None
    """The MuJoCo enum of those types."""
    type_prefix: str = ""
    """Prefix of the enum's member names (``mjJNT_``)."""


ELEMENT_KINDS = MappingProxyType(
    {
        "sites": ElementKind(mujoco.mjtObj.mjOBJ_SITE, "nsite", ("site_xpos", "site_xmat")),
        "bodies": ElementKind(
            mujoco.mjtObj.mjOBJ_BODY,
            "nbody",
            ("xpos", "xquat", "xmat", "xipos", "subtree_com", "cvel"),
        ),
        "joints": ElementKind(
            mujoco.mjtObj.mjOBJ_JOINT,
            "njnt",
            ("qpos", "qvel", "qacc", "qfrc_actuator"),
            ranges=_joint_ranges,
            type_attr="jnt_type",
            type_enum=mujoco.mjtJoint,
            type_prefix="mjJNT_",
        ),
        "sensors": ElementKind(
            mujoco.mjtObj.mjOBJ_SENSOR,
            "nsensor",
            ("sensordata",),
            ranges=_sensor_ranges,
            type_attr="sensor_type",
            type_enum=mujoco.mjtSensor,
            type_prefix="mjSENS_",
        ),
        "actuators": ElementKind(
            mujoco.mjtObj.mjOBJ_ACTUATOR,
            "nu",
            ("actuator_length", "actuator_velocity", "actuator_force", "ctrl", "act"),
            ranges=_actuator_ranges,
        ),
    }
)
"""The element kinds a ``Publish`` group may select, by its key."""


@dataclass(frozen=True)
class Reader:
    """Reads one datapack from every world: ``field[index]`` reshaped to ``shape`` per world."""

    field: str | None
    """MjData field; ``None``: zeros (a declared element the model lacks)."""
    index: Any
    """Index into the field: an integer array, a slice or ``()``."""
    shape: tuple[int, ...]
    """Shape per world."""

    def read(self, datas: Sequence[mujoco.MjData]) -> np.ndarray:
        """The datapack ``[W, *shape]`` float64."""
        if self.field is None:
            return np.zeros((len(datas), *self.shape))
        field = self.field
        rows = [np.asarray(getattr(data, field))[self.index] for data in datas]
        return np.array(rows, dtype=np.float64).reshape((len(datas), *self.shape))


@dataclass
class HeldPose:
    """A free joint held at a per-world pose before every step (a goal marker)."""

    qpos: int
    """Address of the joint's qpos."""
    dof: int
    """Address of the joint's first degree of freedom."""
    initial: np.ndarray
    """The joint's initial pose ``[7]``."""
    pose: np.ndarray
    """The pose each world holds ``[W, 7]``."""


def _element_ids(
    model: mujoco.MjModel, kind: ElementKind, selection: Any, where: str
) -> tuple[np.ndarray, list[str]]:
    """Ids of the selected elements and the names the model lacks."""
    if isinstance(selection, Mapping):
        types = selection.get("type")
        if types is None:
            return np.arange(int(getattr(model, kind.count))), []
        if kind.type_attr is None:
            raise ValueError(
                f"{where}.type: expected names (type selection is for joints and sensors). "
                f"Received: {types!r}"
            )
        wanted = [types] if isinstance(types, str) else list(types)
        codes = []
        for name in wanted:
            member = getattr(kind.type_enum, f"{kind.type_prefix}{name.upper()}", None)
            if member is None:
                raise ValueError(
                    f"{where}.type: expected MuJoCo {kind.type_enum.__name__} names. "
                    f"Received: {name!r}"
                )
            codes.append(int(member))
        return np.flatnonzero(np.isin(getattr(model, kind.type_attr), codes)), []
    names = [selection] if isinstance(selection, str) else list(selection)
    ids = [mujoco.mj_name2id(model, kind.obj, name) for name in names]
    missing = [name for name, index in zip(names, ids, strict=True) if index < 0]
    return np.array(ids, dtype=np.int64), missing


def build_reader(
    model: mujoco.MjModel, data: mujoco.MjData, group: Mapping[str, Any], where: str
) -> Reader:
    """The reader of one declared ``Publish`` group, its index table computed now.

    Args:
        model: The model whose elements the group names.
        data: One of its worlds (for the widths of row fields such as ``site_xmat``).
        group: The group's declaration (see ``$defs/Group`` in the schema).
        where: Names the group in errors, e.g. ``"[physics] initialize: Publish.touch"``.

    Raises:
        ValueError: Naming ``where``, if an element is missing (and no ``absent_shape``), the
            field does not fit the element kind, or an element has no entry in the field.
    """
    key = next(key for key in ELEMENT_KINDS if key in group)
    kind = ELEMENT_KINDS[key]
    field = group.get("field") or kind.fields[0]
    if field not in kind.fields:
        raise ValueError(
            f"{where}.field: expected one of {list(kind.fields)} for {key}. Received: {field!r}"
        )
    ids, missing = _element_ids(model, kind, group[key], f"{where}.{key}")
    if missing:
        if group.get("absent_shape") is not None:
            return Reader(None, (), tuple(group["absent_shape"]))
        raise ValueError(
            f"{where}.{key}: expected names of the model's {key}. Received: {missing} "
            f"(not in the model)"
        )
    if kind.ranges is None:
        width = getattr(data, field).shape[1]
        single = isinstance(group[key], str)
        return Reader(field, ids[0] if single else ids, (width,) if single else (ids.size, width))
    starts, widths = kind.ranges(model, field, ids)
    if np.any(starts < 0):
        raise ValueError(
            f"{where}: expected every selected element to have entries in {field}. "
            f"Received: none for {np.asarray(ids)[starts < 0].tolist()}"
        )
    spans = [np.arange(s, s + w) for s, w in zip(starts, widths, strict=True)]
    index = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
    return Reader(field, index.astype(np.int64), (index.size,))


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
        self._readers: dict[str, Reader] = {}
        self._constants: dict[str, np.ndarray] = {}
        self._holds: dict[str, HeldPose] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._camera: WorldCamera | None = None
        self._camera_frame: np.ndarray | None = None
        self._markers: np.ndarray | None = None
        self._world_models: list[mujoco.MjModel] = []
        self._randomizer: DomainRandomizer | None = None
        self._draws: list[Draw] = []
        self._delay_line: ActionDelayLine | None = None

    # ------------------------------------------------------------------ lifecycle

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Load the model, allocate the worlds and build every index table.

        Args:
            config: The engine's section of the simulation config; ``EngineExtraConfigs`` as
                ``mujoco_engine.schema.json`` describes.

        Raises:
            ValueError: If a setting breaks the schema, names what the model lacks, the
                model cannot be loaded, or the engine timestep is not a whole number of
                physics timesteps.
            EngineError: If a camera is configured and no OpenGL backend is usable.
        """
        context = f"[{self.name}] initialize"
        schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
        settings = engine_extra_configs(
            __file__, config.get("EngineExtraConfigs") or {}, f"{context}:"
        )
        base = Path(config.get("ConfigDirectory") or Path.cwd())
        path = self._model_path(config, settings["Model"], base, context)
        try:
            model = mujoco.MjModel.from_xml_path(str(path))
        except ValueError as error:
            raise ValueError(f"{context}: cannot load MJCF {path}: {error}") from None
        self._model = model
        self._substeps, self._physics_ns = self._substeps_for(config, model, context)

        n_worlds = settings["Worlds"]
        randomization = settings["DomainRandomization"]
        own_models = randomization is not None and DomainRandomizer.scales_model(randomization)
        _check_memory(model, n_worlds, context, own_models)
        self.shutdown()
        self._datas = [mujoco.MjData(model) for _ in range(n_worlds)]
        if settings["Threads"] > 1 and n_worlds > 1:
            self._pool = ThreadPoolExecutor(
                max_workers=min(settings["Threads"], n_worlds),
                thread_name_prefix=f"{self.name}-world",
            )

        publish, hold, view = self._declarations(settings, schema, base, context)
        self._readers = {
            name: Reader(field, slice(None) if field != "time" else (), self._generic_shape(field))
            for name, field in GENERIC_DATAPACKS.items()
        }
        for name, group in publish.items():
            where = f"{context}: Publish.{name}"
            self._readers[name] = build_reader(model, self._datas[0], group, where)
        self._constants = {
            "actuator_ctrlrange": np.array(model.actuator_ctrlrange),
            "joint_range": np.array(model.jnt_range),
        }
        self._holds = self._held_poses(model, hold, n_worlds, context)
        self._initial_state(model, settings, context)
        self._warning_counts = self.warning_counts()
        self._randomize(model, randomization, context)

        names = [*self._readers, *self._constants, *self._holds]
        if self._randomizer is not None:
            names.append("domain_randomization")
        if settings["Camera"] is not None:
            self._open_camera(model, CameraSettings.merge(settings["Camera"], view), context)
            names.append("camera")
        names += ["markers", "reset_worlds"]
        self._markers = None
        self._names = tuple(names)
        self._pending_resets = np.zeros(n_worlds, dtype=bool)
        self._seed_worlds(None)
        for world in range(n_worlds):
            self._reset_world(world, None)

    def reset(self, seed: int | None) -> None:
        """Restore every world to its initial state with seeded noise.

        World ``i`` draws from ``numpy.random.default_rng([seed, i])``: ``JointNoise`` on the
        hinge and slide joints (kept inside limited joints' ranges), then each
        ``RotationNoise`` turn in declared order. Position servos hold the new pose (``ctrl``
        = actuator length, clipped to the control range); other controls start at 0.
        ``seed=None`` draws fresh entropy.

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
            nstep = physics_steps(timestep_ns, model, f"[{self.name}] step")

        def advance(world: int) -> None:
            self._hold(world)
            if self._delay_line is not None:
                self._datas[world].ctrl[:] = self._delay_line.advance(world)
            try:
                mujoco.mj_step(self._world_models[world], self._datas[world], nstep=nstep)
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
        if self._camera is not None:
            self._camera.close()
            self._camera = None
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

    def world_model(self, world: int) -> mujoco.MjModel:
        """The MjModel world ``world`` steps: its own copy when ``DomainRandomization`` scales
        model properties, the loaded model otherwise."""
        return self._world_models[world]

    def warning_counts(self) -> np.ndarray:
        """MuJoCo's warning counters ``[W, mjNWARNING]`` (``int64``) since the last reset."""
        return np.array([data.warning.number for data in self._datas], dtype=np.int64)

    def get_datapack(self, name: str) -> DataPackValue:
        reader = self._readers.get(name)
        if reader is not None:
            value = reader.read(self._datas)
            if self._randomizer is not None and name in self._randomizer.noise:
                return self._randomizer.observe(name, value, self._draws, self._noise_rngs)
            return value
        if name == "domain_randomization" and self._randomizer is not None:
            return np.array([self._randomizer.values(draw) for draw in self._draws])
        if name in self._constants:
            return self._constants[name].copy()
        if name in self._holds:
            return self._holds[name].pose.copy()
        if name == "reset_worlds":
            return self._pending_resets.copy()
        if name == "camera" and self._camera is not None:
            return self._render()
        if name == "markers":
            if self._markers is None:
                return np.zeros((len(self._datas), 0, MARKER_COORDINATES))
            return self._markers.copy()
        raise ValueError(
            f"[{self.name}] get: expected one of this engine's datapacks "
            f"({', '.join(self._names) or 'none: not initialized'}). Received: {name!r}"
        )

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
            if self._delay_line is not None:
                self._delay_line.sent[:] = ctrl
                return
            for data, row in zip(self._datas, ctrl, strict=True):
                data.ctrl[:] = row
            return
        if name == "markers":
            self._markers = self._marker_positions(value)
            self._camera_frame = None
            return
        if name in self._holds:
            pose = self._finite_array(name, value, (len(self._datas), FREE_JOINT_QPOS))
            norms = np.linalg.norm(pose[:, QUATERNION], axis=1, keepdims=True)
            if np.any(norms == 0.0):
                raise ValueError(
                    f"[{self.name}] set {name}: expected non-zero quaternions "
                    f"(columns 3..6). Received: a zero quaternion in worlds "
                    f"{np.flatnonzero(norms[:, 0] == 0.0).tolist()}"
                )
            pose[:, QUATERNION] /= norms
            self._holds[name].pose = pose
            self._camera_frame = None
            return
        raise ValueError(
            f"[{self.name}] set: expected one of the datapacks this engine accepts "
            f"({', '.join(['ctrl', 'reset_worlds', 'markers', *self._holds])}). Received: {name!r}"
        )

    # ------------------------------------------------------------------ helpers

    def _require_model(self, verb: str) -> mujoco.MjModel:
        if self._model is None:
            raise ValueError(f"[{self.name}] {verb}: expected initialize() first. Received: none")
        return self._model

    def _model_path(
        self, config: Mapping[str, Any], model: str | None, base: Path, context: str
    ) -> Path:
        world_file = config.get("WorldFileName")
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
        if abs(physics_ns - physics_dt * NS_PER_SECOND) > NS_ROUNDING_TOLERANCE:
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

    def _declarations(
        self, settings: Mapping[str, Any], schema: Mapping[str, Any], base: Path, context: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """``Publish`` and ``Hold`` (the Body file's, updated with the config's own) and the
        Body file's ``View``."""
        publish: dict[str, Any] = {}
        hold: dict[str, Any] = {}
        view: dict[str, Any] = {}
        if settings["Body"] is not None:
            path = Path(settings["Body"])
            path = path if path.is_absolute() else base / path
            try:
                body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as error:
                raise ValueError(
                    f"{context}: expected EngineExtraConfigs.Body to name a readable YAML body "
                    f"description. Received: {settings['Body']!r} ({error})"
                ) from None
            body_schema = {"$ref": "#/$defs/Body", "$defs": schema["$defs"]}
            validate(body, body_schema, f"Body file {path}", context)
            publish.update(body.get("Publish") or {})
            hold.update(body.get("Hold") or {})
            view.update(body.get("View") or {})
        publish.update(settings["Publish"])
        hold.update(settings["Hold"])
        taken = sorted(
            (set(publish) | set(hold))
            & {
                *GENERIC_DATAPACKS,
                "actuator_ctrlrange",
                "joint_range",
                "reset_worlds",
                "camera",
                "markers",
                "domain_randomization",
            }
        )
        if taken or set(publish) & set(hold):
            raise ValueError(
                f"{context}: expected Publish and Hold names apart from each other and from "
                f"the engine's own datapacks. Received: {taken or sorted(set(publish) & set(hold))}"
            )
        return publish, hold, view

    def _generic_shape(self, field: str) -> tuple[int, ...]:
        return np.shape(getattr(self._datas[0], field))

    def _held_poses(
        self, model: mujoco.MjModel, hold: Mapping[str, Any], n_worlds: int, context: str
    ) -> dict[str, HeldPose]:
        holds = {}
        for name, spec in hold.items():
            joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, spec["joint"])
            if joint < 0 and spec.get("optional", False):
                continue
            if joint < 0 or model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_FREE:
                raise ValueError(
                    f"{context}: Hold.{name}.joint: expected a free joint of the model. "
                    f"Received: {spec['joint']!r}"
                )
            qpos = int(model.jnt_qposadr[joint])
            initial = model.qpos0[qpos : qpos + FREE_JOINT_QPOS].copy()
            holds[name] = HeldPose(
                qpos, int(model.jnt_dofadr[joint]), initial, np.tile(initial, (n_worlds, 1))
            )
        return holds

    def _initial_state(
        self, model: mujoco.MjModel, settings: Mapping[str, Any], context: str
    ) -> None:
        """Initial qpos, joint noise bounds, rotation noise and position-servo masks."""
        scalar = np.flatnonzero(np.isin(model.jnt_type, SCALAR_JOINTS))
        self._noise = float(settings["JointNoise"])
        self._noise_qpos = model.jnt_qposadr[scalar].copy()
        limited = model.jnt_limited[scalar].astype(bool)
        self._noise_low = np.where(limited, model.jnt_range[scalar, 0], -np.inf)
        self._noise_high = np.where(limited, model.jnt_range[scalar, 1], np.inf)

        qpos = model.qpos0.copy()
        for joint_name, value in settings["InitialJointPositions"].items():
            joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint_name)
            if joint < 0 or joint not in scalar:
                raise ValueError(
                    f"{context}: EngineExtraConfigs.InitialJointPositions: expected names of "
                    f"hinge or slide joints of the model. Received: {joint_name!r}"
                )
            qpos[model.jnt_qposadr[joint]] = value
        self._initial_qpos = qpos

        self._rotations: list[tuple[int, np.ndarray, float]] = []
        for joint_name, turn in settings["RotationNoise"].items():
            joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint_name)
            if joint < 0 or model.jnt_type[joint] not in ROTATING_JOINTS:
                raise ValueError(
                    f"{context}: EngineExtraConfigs.RotationNoise: expected names of free or "
                    f"ball joints of the model. Received: {joint_name!r}"
                )
            axis = np.asarray(turn["Axis"], dtype=np.float64)
            if not np.linalg.norm(axis) > 0.0:
                raise ValueError(
                    f"{context}: EngineExtraConfigs.RotationNoise.{joint_name}.Axis: expected "
                    f"a non-zero vector. Received: {turn['Axis']!r}"
                )
            start = int(model.jnt_qposadr[joint])
            start += QUATERNION.start if model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_FREE else 0
            self._rotations.append((start, axis / np.linalg.norm(axis), float(turn["Angle"])))

        servo = (model.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE) & (
            model.actuator_biasprm[:, 1] < 0.0
        )
        self._servos = servo
        limited = model.actuator_ctrllimited.astype(bool)
        self._ctrl_low = np.where(limited, model.actuator_ctrlrange[:, 0], -np.inf)
        self._ctrl_high = np.where(limited, model.actuator_ctrlrange[:, 1], np.inf)

    def _open_camera(self, model: mujoco.MjModel, settings: CameraSettings, context: str) -> None:
        if settings.world is not None and settings.world >= len(self._datas):
            raise ValueError(
                f"{context}: EngineExtraConfigs.Camera.World: expected a world index below "
                f"Worlds={len(self._datas)}. Received: World={settings.world}"
            )
        self._camera = WorldCamera(model, settings, context)

    def _render(self) -> np.ndarray:
        if self._camera is None:
            raise ValueError(f"[{self.name}] get camera: expected a configured Camera")
        if self._camera_frame is None:
            model = self._require_model("get camera")
            models = self._world_models
            own_models = any(world_model is not model for world_model in models)

            def prepare(world: int) -> None:
                if self._holds:
                    self._hold(world)
                    mujoco.mj_kinematics(models[world], self._datas[world])
                    mujoco.mj_camlight(models[world], self._datas[world])

            # Randomised worlds are drawn with their own sizes, colours and lights.
            self._camera_frame = self._camera.render(
                self._datas, self._markers, prepare, models=models if own_models else None
            )
        return self._camera_frame.copy()

    def _marker_positions(self, value: DataPackValue) -> np.ndarray:
        """Check goal-marker positions ``[W, M, 3]`` (finite; M may be 0)."""
        array = np.asarray(value) if isinstance(value, np.ndarray | np.generic) else None
        shape = None if array is None else array.shape
        if shape is None or len(shape) != 3 or shape[::2] != (len(self._datas), 3):
            raise ValueError(
                f"[{self.name}] set markers: expected positions of shape "
                f"({len(self._datas)}, markers, {MARKER_COORDINATES}). Received: "
                f"{type(value).__name__ if shape is None else f'shape {shape}'}"
            )
        return self._finite_array("markers", value, shape)

    def _hold(self, world: int) -> None:
        """Put world ``world``'s held joints at their poses, at rest."""
        data = self._datas[world]
        for held in self._holds.values():
            data.qpos[held.qpos : held.qpos + FREE_JOINT_QPOS] = held.pose[world]
            data.qvel[held.dof : held.dof + FREE_JOINT_QVEL] = 0.0

    def _seed_worlds(self, seed: int | None) -> None:
        """One generator per world, ``default_rng([seed, world])`` (fresh entropy for None), and
        one for its observation noise."""
        entropy = secrets.randbits(ENTROPY_BITS) if seed is None else seed
        worlds = range(len(self._datas))
        self._rngs = [np.random.default_rng([entropy, world]) for world in worlds]
        self._noise_rngs = [
            np.random.default_rng([entropy, world, NOISE_STREAM]) for world in worlds
        ]

    def _randomize(
        self, model: mujoco.MjModel, settings: Mapping[str, Any] | None, context: str
    ) -> None:
        """Domain randomisation, if declared: a model copy per world when model properties are
        randomised (the worlds share ``model`` otherwise) and the action delay line."""
        self._randomizer = None
        self._delay_line = None
        self._world_models = [model] * len(self._datas)
        if settings is None:
            return
        shapes = {name: reader.shape for name, reader in self._readers.items()}
        self._randomizer = DomainRandomizer(model, settings, shapes, context)
        if self._randomizer.rules:
            self._world_models = [copy.copy(model) for _ in self._datas]
        if self._randomizer.delay is not None:
            self._delay_line = ActionDelayLine(
                len(self._datas), model.nu, self._randomizer.max_delay
            )
        self._draws = [self._randomizer.neutral() for _ in self._datas]

    def _reset_world(self, world: int, rng: np.random.Generator | None) -> None:
        self._require_model("reset")
        model = self._world_models[world]
        data = self._datas[world]
        if self._randomizer is not None:
            draw = self._randomizer.neutral() if rng is None else self._randomizer.draw(rng)
            self._randomizer.apply(model, data, draw)
            self._draws[world] = draw
        mujoco.mj_resetData(model, data)
        data.qpos[:] = self._initial_qpos
        if rng is not None:
            noise = rng.uniform(-self._noise, self._noise, self._noise_qpos.size)
            data.qpos[self._noise_qpos] = np.clip(
                data.qpos[self._noise_qpos] + noise, self._noise_low, self._noise_high
            )
            for start, axis, angle in self._rotations:
                turn = np.empty(4)
                mujoco.mju_axisAngle2Quat(turn, axis, rng.uniform(-angle, angle))
                quat = slice(start, start + 4)
                turned = np.empty(4)
                mujoco.mju_mulQuat(turned, turn, data.qpos[quat])
                data.qpos[quat] = turned
        for held in self._holds.values():
            held.pose[world] = held.initial
        self._hold(world)
        try:
            mujoco.mj_forward(model, data)
        except mujoco.FatalError as error:
            raise PhysicsError(
                f"[{self.name}] reset: MuJoCo failed in world {world}; for arena overflow, "
                f"raise <size memory=...> in the MJCF. Received: {error}"
            ) from None
        hold = np.where(self._servos, data.actuator_length, 0.0)
        data.ctrl[:] = np.clip(hold, self._ctrl_low, self._ctrl_high)
        if self._delay_line is not None:
            self._delay_line.reset(world, data.ctrl, self._draws[world].delay)
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
