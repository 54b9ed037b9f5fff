"""A Gymnasium ``Env`` view of a simulation config, with the brain engine left out.

::

    env = SimulationEnv("simulation_configs/shadow_hand_reach.json", overrides=ONE_WORLD)
    observation, info = env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(env.action_space.sample())

The agent takes the place of one engine (by default the config's ``keras_brain``): what the
config's functions send that engine is the observation (the policy's Sensation modalities),
and the action the agent passes to ``step`` is that engine's ``action`` datapack. Every
other engine runs as configured, in its own process, through the same FTILoop and
functions. Reward, termination and truncation are preprocessed datapacks the config's
functions produce (``transceivers.shadow_hand_loop`` makes ``reward``, ``terminated`` and
``truncated`` for the physics engine).

Timing is the orchestrated loop's: physics and brain step concurrently, so the action given
to ``step`` acts from the next control step on (one control step of sensorimotor delay).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium
import numpy as np

from neuroloop.brain.actions import get_actions
from neuroloop.config import load_config
from neuroloop.datapack import DataPackIdentifier, DataPackValue
from neuroloop.render import (
    DEFAULT_SIZE,
    VideoRequest,
    camera_overrides,
    choose_gl_backend,
    physics_engine,
)
from neuroloop.simulation import Simulation
from neuroloop.training.gather import REWARD, TERMINATED, TRUNCATED

ACTION = "action"
BRAIN_TYPE = "keras_brain"
VALUE_ONLY_MODALITIES = ("asymmetric",)
"""Modalities the value network sees in training, never the policy: not observed."""


class _AgentStep:
    """The agent's side of one step: the action in force when the loop collects it."""

    def __init__(self, slot: AgentSlot, get: Sequence[str]) -> None:
        self.slot = slot
        self.get = get

    def result(self) -> dict[str, DataPackValue]:
        return {name: self.slot.action if name == ACTION else None for name in self.get}

    def cancel(self) -> None:
        """Nothing runs in the background."""


class AgentSlot:
    """Stands in for an engine: keeps what functions send it, offers the agent's action."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.time_ns = 0
        self.inputs: dict[str, DataPackValue] = {}
        self.action: np.ndarray | None = None

    def initialize(self, config: Mapping[str, Any]) -> list[str]:
        return [ACTION]

    def reset(self, seed: int | None) -> int:
        self.time_ns = 0
        self.inputs = {}
        self.action = None
        return 0

    def step_async(
        self, to_set: Mapping[str, DataPackValue], timestep_ns: int, get: Sequence[str]
    ) -> _AgentStep:
        self.inputs = dict(to_set)
        self.time_ns += timestep_ns
        return _AgentStep(self, get)

    def get_datapacks(self, names: Iterable[str]) -> dict[str, DataPackValue]:
        return _AgentStep(self, list(names)).result()

    def set_datapacks(self, values: Mapping[str, DataPackValue]) -> None:
        if ACTION in values:
            self.action = np.asarray(values[ACTION])

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Nothing to shut down."""

    def close(self) -> None:
        """Nothing to close."""


class SimulationEnv(gymnasium.Env[dict[str, np.ndarray], np.ndarray]):
    """A simulation config as a Gymnasium environment (one world).

    Args:
        config: The simulation config file.
        overrides: ``-o`` style overrides, e.g. to set ``Worlds`` to 1.
        agent: The engine the agent replaces (default: the config's one keras_brain engine).
        reward: The datapack holding the reward, looked up among preprocessed datapacks
            first, then engine datapacks.
        terminated: The datapack saying an episode ended in a terminal state.
        truncated: The datapack saying an episode ended by a limit.
        render_mode: ``"rgb_array"``: ``render()`` returns the picture ``[H, W, 3]`` of the
            config's MuJoCo engine after the latest step, taken offscreen (``MUJOCO_GL``, or
            EGL, else OSMesa) from the body's default view with the goal drawn in.
            ``None``: no pictures.
        render_size: ``(width, height)`` of the pictures (px).

    Raises:
        ValueError: If the agent engine is ambiguous, the config runs more than one world,
            or ``render_mode`` is not supported.
        UsageError: If pictures are asked for and no offscreen OpenGL backend works.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        config: str | Path,
        overrides: Sequence[str] = (),
        *,
        agent: str | None = None,
        reward: DataPackIdentifier = REWARD,
        terminated: DataPackIdentifier = TERMINATED,
        truncated: DataPackIdentifier = TRUNCATED,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"render_mode: expected one of {self.metadata['render_modes']} or None. "
                f"Received: {render_mode!r}"
            )
        self.render_mode = render_mode
        self._camera_engine: str | None = None
        if render_mode is not None:
            plain = load_config(config, overrides)
            self._camera_engine = physics_engine(plain)
            request = VideoRequest(Path(), width=render_size[0], height=render_size[1])
            overrides = [*overrides, *camera_overrides(plain, request)]
            choose_gl_backend()
        loaded = load_config(config, overrides)
        if agent is None:
            brains = [e.name for e in loaded.engines if e.type == BRAIN_TYPE]
            if len(brains) != 1:
                raise ValueError(
                    f"{loaded.path}: expected exactly one {BRAIN_TYPE} engine for the agent to "
                    f"replace, or agent=NAME. Received: {brains}"
                )
            agent = brains[0]
        extra = loaded.engine(agent).extra
        for engine in loaded.engines:
            worlds = engine.extra.get("Worlds", 1)
            if worlds != 1:
                raise ValueError(
                    f"{loaded.path}: EngineConfigs.EngineName:{engine.name}.EngineExtraConfigs"
                    f".Worlds: expected 1 for a Gymnasium view (override it with "
                    f"-o). Received: Worlds={worlds}"
                )
        shapes = {
            name: tuple(shape)
            for name, shape in extra.get("InputShapes", {}).items()
            if name not in VALUE_ONLY_MODALITIES
        }
        self._modalities = tuple(shapes)
        self.observation_space = gymnasium.spaces.Dict(  # type: ignore[assignment]
            {
                name: gymnasium.spaces.Box(-np.inf, np.inf, shape, np.float32)
                for name, shape in shapes.items()
            }
        )
        self.action_space = _action_space(extra)
        self._ids = (reward, terminated, truncated)
        self._slot = AgentSlot(agent)
        self._simulation = Simulation(loaded, local={agent: self._slot}, echo_engine_output=False)
        self._simulation.__enter__()
        if self._camera_engine is not None:
            self._simulation.loop.request(self._camera_engine, ["camera"])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._simulation.reset(seed)
        self._simulation.loop.run_until_stepped(self._slot.name)
        return self._observation(), {}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        array = np.asarray(action, dtype=self.action_space.dtype)
        if array.shape != self.action_space.shape or not self.action_space.contains(array):
            raise ValueError(
                f"[{self._slot.name}] action: expected a member of {self.action_space}. "
                f"Received: {array!r}"
            )
        if self._simulation.done:
            raise ValueError(
                f"{self._simulation.config.path}: the simulation has ended (status function or "
                "SimulationTimeout); call reset() before step()"
            )
        self._slot.action = array[None]
        self._simulation.loop.run_until_stepped(self._slot.name)
        reward, terminated, truncated = (self._scalar(i) for i in self._ids)
        return self._observation(), float(reward), bool(terminated), bool(truncated), {}

    def render(self) -> np.ndarray | None:
        """The picture ``[H, W, 3]`` ``uint8`` after the latest step (``rgb_array`` mode),
        or None without a ``render_mode``."""
        if self._camera_engine is None:
            return None
        return np.asarray(self._simulation.datapack("camera", self._camera_engine))[0]

    def close(self) -> None:
        self._simulation.close()

    def _observation(self) -> dict[str, np.ndarray]:
        inputs = self._slot.inputs
        return {name: np.asarray(inputs[name], dtype=np.float32)[0] for name in self._modalities}

    def _scalar(self, identifier: DataPackIdentifier) -> Any:
        datapack = self._simulation.loop.store.latest(identifier)
        if datapack is None or datapack.data is None:
            raise ValueError(
                f"datapack {identifier}: expected the config's functions to produce it. "
                f"Received: nothing"
            )
        return np.asarray(datapack.data).reshape(-1)[0]


def _action_space(extra: Mapping[str, Any]) -> gymnasium.spaces.Space[np.ndarray]:
    actions = get_actions(extra.get("Distribution", "beta"), extra.get("DistributionOptions"))
    return actions.space(int(extra["ActionDim"]))
