"""NRP-core's py_sim engine: an engine script drives a simulator through ``sim_manager``.

``EngineType: py_sim`` runs an NRP-core PySim script (``class Script(PySimEngineScript)`` in
``PythonFileName``). The script's ``self.sim_manager`` wraps the simulator named by
``Simulator``, loaded from ``WorldFileName``:

- ``Mujoco``: an MJCF file, on the ``mujoco`` bindings;
- ``OpenAI``: a Gymnasium environment id (``WorldFileName: "MountainCar-v0"``);
- ``Opensim``: an ``.osim`` model (the optional ``opensim`` extra);
- ``Bullet``: a URDF model on a ground plane, under gravity (the optional ``bullet`` extra).

``Visualizer: true`` opens the simulator's viewer when there is a display, and otherwise says
so on stderr and runs without one.
"""

from __future__ import annotations

import abc
import os
import sys
from collections.abc import Mapping
from typing import Any

import gymnasium
import mujoco
import numpy as np

from neuroloop.modules import import_extra
from neuroloop.plugins.engines.mujoco_engine import physics_steps
from neuroloop.script_engine import EngineScript, GrpcEngineScript, ScriptEngine

NS_PER_SECOND = 1_000_000_000
GYM_PROPERTY = "Property"
"""The one property type of an OpenAI simulator (NRP-core's name)."""
GYM_PROPERTIES = ("observation", "reward", "truncated", "doneFlag", "trainInfo")
"""What an OpenAI simulator reports after each step, by NRP-core's names."""
MUJOCO_KINDS: Mapping[str, tuple[str, mujoco.mjtObj]] = {
    "body": ("nbody", mujoco.mjtObj.mjOBJ_BODY),
    "joint": ("njnt", mujoco.mjtObj.mjOBJ_JOINT),
    "geom": ("ngeom", mujoco.mjtObj.mjOBJ_GEOM),
    "site": ("nsite", mujoco.mjtObj.mjOBJ_SITE),
    "light": ("nlight", mujoco.mjtObj.mjOBJ_LIGHT),
    "camera": ("ncam", mujoco.mjtObj.mjOBJ_CAMERA),
    "actuator": ("nu", mujoco.mjtObj.mjOBJ_ACTUATOR),
    "sensor": ("nsensor", mujoco.mjtObj.mjOBJ_SENSOR),
    "tendon": ("ntendon", mujoco.mjtObj.mjOBJ_TENDON),
    "mesh": ("nmesh", mujoco.mjtObj.mjOBJ_MESH),
}
"""MuJoCo element kinds ``get_model_properties`` lists: their count in MjModel and object type."""
OPENSIM_NAMES = ("Joint", "Coordinate", "Force")
OPENSIM_VALUES = ("Joint", "Velocity", "Force")
BULLET_TYPES = ("Joint", "Link", "Body")
BULLET_GRAVITY = (0.0, 0.0, -9.8)
"""Gravity of a Bullet world (m/s^2), as NRP-core's Bullet interface sets it."""
BULLET_GROUND = "plane.urdf"
"""The ground plane every Bullet world stands on, from pybullet_data."""
BULLET_JOINT_DEFAULTS: Mapping[str, Any] = {
    "index": 0,
    "controlMode": "POSITION_CONTROL",
    "targetPosition": 0.0,
    "targetVelocity": 0.0,
    "force": 0.0,
    "positionGain": 1.0,
    "velocityGain": 1.0,
    "maxVelocity": 0.0,
}
"""A Bullet action's ``Joint`` entry: what a script leaves out (NRP-core's defaults)."""
BULLET_FORCE_DEFAULTS: Mapping[str, Any] = {
    "index": 0,
    "forceObj": [0.0, 0.0, 0.0],
    "posObj": [0.0, 0.0, 0.0],
    "flags": "LINK_FRAME",
}
BULLET_TORQUE_DEFAULTS: Mapping[str, Any] = {
    "index": 0,
    "torqueObj": [0.0, 0.0, 0.0],
    "flags": "LINK_FRAME",
}


class Simulator(abc.ABC):
    """One simulator behind NRP-core's ``SimulatorManager`` calls."""

    @abc.abstractmethod
    def __init__(self, world: str, visualizer: bool, settings: Mapping[str, Any]) -> None:
        """Load ``world`` (``WorldFileName``), with a viewer if ``visualizer``; ``settings``
        are the engine's ``EngineExtraConfigs``."""

    @abc.abstractmethod
    def run_step(self, action: Any, timestep_ns: int) -> Any:
        """Apply ``action`` and advance by ``timestep_ns``."""

    @abc.abstractmethod
    def reset(self) -> Any:
        """Return to the initial state."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release the simulator (and its viewer)."""

    @abc.abstractmethod
    def get_model_properties(self, p_type: str) -> list[str]:
        """Names of the model's elements of type ``p_type``."""

    @abc.abstractmethod
    def get_model_property(self, p_name: str, p_type: str) -> Any:
        """The value of ``p_type`` of the element ``p_name``."""

    @abc.abstractmethod
    def get_model_all_properties(self, p_type: str) -> Any:
        """The values of ``p_type`` of all elements."""

    @abc.abstractmethod
    def get_sim_time(self) -> float:
        """Simulated seconds since the last reset."""


class MujocoSimulator(Simulator):
    """An MJCF model on the ``mujoco`` bindings; names follow NRP-core's MuJoCo interface.

    ``get_model_property(name, "site_xpos")`` reads ``data.site(name).xpos`` (MjData first,
    then MjModel, so ``"body_mass"`` works too); ``get_model_all_properties("qpos")`` reads
    ``data.qpos``.
    """

    def __init__(self, world_file: str, visualizer: bool, settings: Mapping[str, Any]) -> None:
        self.model = mujoco.MjModel.from_xml_path(world_file)
        self.data = mujoco.MjData(self.model)
        self.viewer = None
        mujoco.mj_forward(self.model, self.data)
        if visualizer:
            from mujoco import viewer

            self.viewer = viewer.launch_passive(self.model, self.data)

    def run_step(self, action: Any, timestep_ns: int) -> None:
        """Set the controls to ``action`` (``None``: keep them) and step the physics."""
        if action is not None:
            controls = np.asarray(action, dtype=np.float64)
            if controls.shape != (self.model.nu,):
                raise ValueError(
                    f"[Mujoco] run_step: expected {self.model.nu} controls, one per actuator. "
                    f"Received: shape {controls.shape}"
                )
            self.data.ctrl[:] = controls
        nstep = physics_steps(timestep_ns, self.model, "[Mujoco] run_step")
        mujoco.mj_step(self.model, self.data, nstep=nstep)
        # mj_step leaves positions of sites, bodies and sensors one step behind the state.
        mujoco.mj_forward(self.model, self.data)
        if self.viewer is not None:
            self.viewer.sync()

    def reset(self) -> int:
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        return 0

    def shutdown(self) -> None:
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None

    def get_model_properties(self, p_type: str) -> list[str]:
        if p_type not in MUJOCO_KINDS:
            raise ValueError(
                f"[Mujoco] get_model_properties: expected one of {', '.join(MUJOCO_KINDS)}. "
                f"Received: {p_type!r}"
            )
        count, kind = MUJOCO_KINDS[p_type]
        return [mujoco.mj_id2name(self.model, kind, i) for i in range(getattr(self.model, count))]

    def get_model_property(self, p_name: str, p_type: str) -> Any:
        kind, _, field = p_type.partition("_")
        if kind not in MUJOCO_KINDS:
            raise ValueError(
                f"[Mujoco] get_model_property: expected KIND_FIELD with KIND one of "
                f"{', '.join(MUJOCO_KINDS)} (e.g. site_xpos). Received: {p_type!r}"
            )
        field = field or "data"
        for source in (self.data, self.model):
            try:
                element = getattr(source, kind)(p_name)
            except KeyError:
                raise ValueError(
                    f"[Mujoco] get_model_property: no {kind} named {p_name!r}. "
                    f"Known: {self.get_model_properties(kind)}"
                ) from None
            if hasattr(element, field):
                return np.array(getattr(element, field))
        raise ValueError(f"[Mujoco] get_model_property: a {kind} has no {field!r}")

    def get_model_all_properties(self, p_type: str) -> Any:
        for source in (self.data, self.model):
            if hasattr(source, p_type):
                return np.array(getattr(source, p_type))
        raise ValueError(
            f"[Mujoco] get_model_all_properties: expected a field of MjData or MjModel "
            f"(e.g. qpos, site_xpos). Received: {p_type!r}"
        )

    def get_sim_time(self) -> float:
        return float(self.data.time)


class GymSimulator(Simulator):
    """A Gymnasium environment; reports NRP-core's properties after each step.

    ``run_step`` returns whether the episode terminated; an episode that terminated or was
    truncated starts again at once, and ``observation`` is the new episode's first one.
    """

    def __init__(self, env_id: str, visualizer: bool, settings: Mapping[str, Any]) -> None:
        try:
            self.env = gymnasium.make(env_id, render_mode="human" if visualizer else None)
        except gymnasium.error.Error as error:
            raise ValueError(
                f"[OpenAI] WorldFileName: expected a Gymnasium environment id. "
                f"Received: {env_id!r} ({error})"
            ) from None
        self.seed: int | None = settings.get("Seed")
        self.sim_time_s = 0.0
        self.properties: dict[str, Any] = dict.fromkeys(GYM_PROPERTIES)
        self.reset()

    def run_step(self, action: Any, timestep_ns: int) -> bool:
        space = self.env.action_space
        try:
            value = (
                int(action)
                if isinstance(space, gymnasium.spaces.Discrete)
                else np.asarray(action, space.dtype)
            )
        except (TypeError, ValueError):
            value = None
        if value is None or not space.contains(value):
            raise ValueError(
                f"[OpenAI] run_step: expected an action in {space}. Received: {action!r}"
            )
        observation, reward, terminated, truncated, info = self.env.step(value)
        self.sim_time_s += timestep_ns / NS_PER_SECOND
        self.properties.update(
            observation=observation,
            reward=float(reward),
            truncated=bool(truncated),
            doneFlag=bool(terminated),
            trainInfo=info,
        )
        if terminated or truncated:
            self.properties["observation"], _ = self.env.reset()
        return bool(terminated)

    def reset(self) -> Any:
        observation, info = self.env.reset(seed=self.seed)
        self.seed = None  # one seed for the run, as gymnasium intends
        self.properties.update(observation=observation, trainInfo=info)
        self.sim_time_s = 0.0
        return observation

    def shutdown(self) -> None:
        self.env.close()

    def get_model_properties(self, p_type: str) -> list[str]:
        self._check_type(p_type, "get_model_properties")
        return list(GYM_PROPERTIES)

    def get_model_property(self, p_name: str, p_type: str) -> Any:
        self._check_type(p_type, "get_model_property")
        if p_name not in self.properties:
            raise ValueError(
                f"[OpenAI] get_model_property: expected one of {', '.join(GYM_PROPERTIES)}. "
                f"Received: {p_name!r}"
            )
        value = self.properties[p_name]
        return value.tolist() if isinstance(value, np.ndarray) else value

    def get_model_all_properties(self, p_type: str) -> dict[str, Any]:
        self._check_type(p_type, "get_model_all_properties")
        return dict(self.properties)

    def get_sim_time(self) -> float:
        return self.sim_time_s

    @staticmethod
    def _check_type(p_type: str, verb: str) -> None:
        if p_type != GYM_PROPERTY:
            raise ValueError(f"[OpenAI] {verb}: expected {GYM_PROPERTY!r}. Received: {p_type!r}")


class OpensimSimulator(Simulator):
    """An OpenSim model whose actuators (muscles, ...) take one control each per step."""

    def __init__(self, world_file: str, visualizer: bool, settings: Mapping[str, Any]) -> None:
        opensim = import_extra("opensim", "opensim", "[Opensim] Simulator")
        # OpenSim logs to the console and, unless told otherwise, to ./opensim.log.
        opensim.Logger.removeFileSink()
        self.osim = opensim
        self.accuracy = float(settings["Integrator accuracy"])
        self.model = opensim.Model(world_file)
        self.model.setUseVisualizer(visualizer)
        self.model.initSystem()
        controller = opensim.PrescribedController()
        actuators = self.model.getActuators()
        for index in range(actuators.getSize()):
            actuator = actuators.get(index)
            controller.addActuator(actuator)
            controller.prescribeControlForActuator(
                actuator.getAbsolutePathString(), opensim.Constant(0.0)
            )
        self.model.addController(controller)
        self.state = self.model.initSystem()
        functions = controller.get_ControlFunctions()
        self.controls = [
            opensim.Constant.safeDownCast(functions.get(i)) for i in range(functions.getSize())
        ]
        self.realize = (
            self.model.realizeAcceleration
            if settings["Realize state"] == "Acceleration"
            else self.model.realizeDynamics
        )
        self.coordinates = self.model.getCoordinateSet()
        self.reset()

    def run_step(self, action: Any, timestep_ns: int) -> None:
        """Hold each actuator's control at ``action`` (empty or ``None``: all zero) for the step."""
        no_action = action is None or len(action) == 0
        values = np.zeros(len(self.controls)) if no_action else np.asarray(action, np.float64)
        if values.shape != (len(self.controls),):
            raise ValueError(
                f"[Opensim] run_step: expected {len(self.controls)} controls, one per actuator. "
                f"Received: shape {values.shape}"
            )
        for control, value in zip(self.controls, values, strict=True):
            control.setValue(float(value))
        self.state = self.manager.integrate(self.state.getTime() + timestep_ns / NS_PER_SECOND)
        self.realize(self.state)

    def reset(self) -> int:
        self.state = self.model.initializeState()
        self.state.setTime(0)
        self.manager = self.osim.Manager(self.model)
        self.manager.setIntegratorAccuracy(self.accuracy)
        self.manager.initialize(self.state)
        self.realize(self.state)
        return 0

    def get_model_properties(self, p_type: str) -> list[str]:
        sets = {
            "Joint": self.model.getJointSet(),
            "Coordinate": self.coordinates,
            "Force": self.model.getForceSet(),
        }
        if p_type not in sets:
            raise ValueError(
                f"[Opensim] get_model_properties: expected one of {', '.join(OPENSIM_NAMES)}. "
                f"Received: {p_type!r}"
            )
        elements = sets[p_type]
        return [elements.get(i).getName() for i in range(elements.getSize())]

    def get_model_property(self, p_name: str, p_type: str) -> Any:
        if p_type == "Force":
            force = self.model.getForceSet().get(p_name)
            values = force.getRecordValues(self.state)
            return [values.get(i) for i in range(values.getSize())]
        if p_type not in OPENSIM_VALUES:
            raise ValueError(
                f"[Opensim] get_model_property: expected one of {', '.join(OPENSIM_VALUES)}. "
                f"Received: {p_type!r}"
            )
        if not self.coordinates.contains(p_name):
            raise ValueError(
                f"[Opensim] get_model_property: no coordinate named {p_name!r}. "
                f"Known: {self.get_model_properties('Coordinate')}"
            )
        coordinate = self.coordinates.get(p_name)
        if p_type == "Joint":
            return coordinate.getValue(self.state)
        return coordinate.getSpeedValue(self.state)

    def get_model_all_properties(self, p_type: str) -> dict[str, Any]:
        names = self.get_model_properties("Force" if p_type == "Force" else "Coordinate")
        return {name: self.get_model_property(name, p_type) for name in names}

    def get_sim_time(self) -> float:
        return float(self.state.getTime())


class BulletSimulator(Simulator):
    """A URDF model in a Bullet world; names follow NRP-core's Bullet interface.

    An action is a dict with any of ``Joint`` (motor commands: ``index``, ``controlMode``
    such as ``"VELOCITY_CONTROL"``, targets, gains, ``force``), ``Force`` and ``Torque``
    (external pushes on a link ``index``); entries may leave out what they do not set.
    Properties: ``Joint`` and ``Link`` states by name, ``Body`` dynamics by body name.
    """

    def __init__(self, world_file: str, visualizer: bool, settings: Mapping[str, Any]) -> None:
        self.bullet: Any = import_extra("pybullet", "bullet", "[Bullet] Simulator")
        data: Any = import_extra("pybullet_data", "bullet", "[Bullet] Simulator")
        bullet = self.bullet
        self.client = bullet.connect(bullet.GUI if visualizer else bullet.DIRECT)
        bullet.setGravity(*BULLET_GRAVITY, physicsClientId=self.client)
        bullet.setAdditionalSearchPath(data.getDataPath(), physicsClientId=self.client)
        bullet.loadURDF(BULLET_GROUND, physicsClientId=self.client)
        try:
            self.model = bullet.loadURDF(world_file, physicsClientId=self.client)
        except bullet.error as error:
            raise ValueError(f"[Bullet] WorldFileName: cannot load {world_file}: {error}") from None
        self.joints: dict[str, int] = {}
        self.links: dict[str, int] = {}
        for index in range(bullet.getNumJoints(self.model, physicsClientId=self.client)):
            info = bullet.getJointInfo(self.model, index, physicsClientId=self.client)
            self.joints[info[1].decode()] = index
            self.links[info[12].decode()] = index
        self.bodies = {
            bullet.getBodyInfo(body, physicsClientId=self.client)[1].decode(): body
            for body in range(bullet.getNumBodies(physicsClientId=self.client))
        }
        self.initial_state = bullet.saveState(physicsClientId=self.client)
        self.sim_time_s = 0.0

    def run_step(self, action: Any, timestep_ns: int) -> None:
        bullet, client = self.bullet, self.client
        commands = action or {}
        if not isinstance(commands, Mapping):
            raise ValueError(
                "[Bullet] run_step: expected an action dict with Joint, Force or Torque "
                f"entries. Received: {action!r:.100}"
            )
        for joint in commands.get("Joint", ()):
            motor = {**BULLET_JOINT_DEFAULTS, **joint}
            motor["controlMode"] = getattr(bullet, motor["controlMode"])
            arguments = self._arguments(motor, "jointIndex")
            bullet.setJointMotorControl2(self.model, physicsClientId=client, **arguments)
        for push in commands.get("Force", ()):
            force = self._arguments({**BULLET_FORCE_DEFAULTS, **push}, "linkIndex")
            bullet.applyExternalForce(self.model, physicsClientId=client, **force)
        for twist in commands.get("Torque", ()):
            torque = self._arguments({**BULLET_TORQUE_DEFAULTS, **twist}, "linkIndex")
            bullet.applyExternalTorque(self.model, physicsClientId=client, **torque)
        timestep_s = timestep_ns / NS_PER_SECOND
        bullet.setTimeStep(timestep_s, physicsClientId=client)
        bullet.stepSimulation(physicsClientId=client)
        self.sim_time_s += timestep_s

    def _arguments(self, command: dict[str, Any], index_keyword: str) -> dict[str, Any]:
        """pybullet's keyword arguments for one command: its ``index`` under
        ``index_keyword``, and flags named as text (``"LINK_FRAME"``) as pybullet's constants."""
        arguments = {index_keyword: command.pop("index"), **command}
        if isinstance(arguments.get("flags"), str):
            arguments["flags"] = int(getattr(self.bullet, arguments["flags"]))
        return arguments

    def reset(self) -> int:
        self.bullet.restoreState(self.initial_state, physicsClientId=self.client)
        self.sim_time_s = 0.0
        return 0

    def shutdown(self) -> None:
        if self.bullet.isConnected(self.client):
            self.bullet.disconnect(physicsClientId=self.client)

    def get_model_properties(self, p_type: str) -> list[str]:
        return list(self._names(p_type, "get_model_properties"))

    def get_model_property(self, p_name: str, p_type: str) -> Any:
        names = self._names(p_type, "get_model_property")
        if p_name not in names:
            raise ValueError(
                f"[Bullet] get_model_property: no {p_type} named {p_name!r}. Known: {list(names)}"
            )
        bullet, client = self.bullet, self.client
        if p_type == "Joint":
            return bullet.getJointState(self.model, names[p_name], physicsClientId=client)
        if p_type == "Link":
            return bullet.getLinkState(self.model, names[p_name], physicsClientId=client)
        return bullet.getDynamicsInfo(names[p_name], -1, physicsClientId=client)

    def get_model_all_properties(self, p_type: str) -> dict[str, Any]:
        return {
            name: self.get_model_property(name, p_type)
            for name in self._names(p_type, "get_model_all_properties")
        }

    def get_sim_time(self) -> float:
        return self.sim_time_s

    def _names(self, p_type: str, verb: str) -> Mapping[str, int]:
        by_type = {"Joint": self.joints, "Link": self.links, "Body": self.bodies}
        if p_type not in by_type:
            raise ValueError(
                f"[Bullet] {verb}: expected one of {', '.join(BULLET_TYPES)}. Received: {p_type!r}"
            )
        return by_type[p_type]


SIMULATORS: Mapping[str, type[Simulator]] = {
    "Mujoco": MujocoSimulator,
    "OpenAI": GymSimulator,
    "Opensim": OpensimSimulator,
    "Bullet": BulletSimulator,
}


class SimulatorManager:
    """NRP-core's ``SimulatorManager``: the simulator of an engine's config, one interface.

    Args:
        configuration: The engine's config section (``Simulator``, ``WorldFileName``,
            ``Visualizer``, ``EngineExtraConfigs``).
    """

    def __init__(self, configuration: Mapping[str, Any]) -> None:
        simulator = str(configuration.get("Simulator"))
        if simulator not in SIMULATORS:
            raise ValueError(
                f"Simulator: expected one of {', '.join(SIMULATORS)}. Received: {simulator!r}"
            )
        visualizer = bool(configuration.get("Visualizer", False)) and _has_display(simulator)
        settings = configuration.get("EngineExtraConfigs", {})
        self.sim_interface = SIMULATORS[simulator](
            str(configuration["WorldFileName"]), visualizer, settings
        )

    def run_step(self, action: Any, timestep_ns: int) -> Any:
        """Apply ``action`` and advance the simulator by ``timestep_ns``."""
        return self.sim_interface.run_step(action, timestep_ns)

    def reset(self) -> Any:
        return self.sim_interface.reset()

    def shutdown(self) -> None:
        self.sim_interface.shutdown()

    def get_model_properties(self, datapack_type: str) -> list[str]:
        return self.sim_interface.get_model_properties(datapack_type)

    def get_model_property(self, datapack_name: str, datapack_type: str) -> Any:
        return self.sim_interface.get_model_property(datapack_name, datapack_type)

    def get_model_all_properties(self, datapack_type: str) -> Any:
        return self.sim_interface.get_model_all_properties(datapack_type)

    def get_sim_time(self) -> float:
        return self.sim_interface.get_sim_time()


def _has_display(simulator: str) -> bool:
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return True
    print(
        f"[{simulator}] Visualizer: no display (DISPLAY is unset); running without a viewer",
        file=sys.stderr,
        flush=True,
    )
    return False


class _SimManaged:
    """``self.sim_manager``, created from ``self._config`` when a script first uses it."""

    _config: dict[str, Any]
    _sim_manager: SimulatorManager | None = None

    @property
    def sim_manager(self) -> SimulatorManager:
        if self._sim_manager is None:
            self._sim_manager = SimulatorManager(self._config)
        return self._sim_manager


class PySimEngineScript(_SimManaged, EngineScript):
    """Base of NRP-core PySim scripts (JSON datapacks)."""


class PySimGrpcEngineScript(_SimManaged, GrpcEngineScript):
    """Base of NRP-core PySim scripts served over gRPC."""


class PySimEngine(ScriptEngine):
    """Hosts a PySim script; its simulator closes at shutdown even if the script forgets."""

    def shutdown(self) -> None:
        super().shutdown()
        manager = getattr(self.script, "_sim_manager", None)
        if manager is not None:
            manager.shutdown()
