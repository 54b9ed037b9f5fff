"""Serve any Gymnasium environment as a neuroloop engine.

Its EngineExtraConfigs are declared, with their defaults, in ``gymnasium_engine.schema.json``.

EngineTimestep must be a whole multiple of the environment's own ``dt`` (when it has
one): each engine step repeats the last action as many times as ``dt`` fits in the step's
timestep (a frame skip) and sums the rewards. Without ``dt``, one engine step is one
environment step.

Datapacks out: ``observation``, ``reward`` (float64, summed over the frame skip),
``terminated``, ``truncated`` (bool), ``episode_return`` and ``episode`` (the episode
counter). Datapack in: ``action``, checked against the action space. When an episode
has ended, the next step starts a new one with ``env.reset()`` before stepping, so the
loop runs on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np

from neuroloop.config import engine_extra_configs, seconds_to_ns
from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine

NS_PER_S = 1_000_000_000
OUTPUTS = ("observation", "reward", "terminated", "truncated", "episode_return", "episode")
INPUTS = ("action",)


class GymnasiumEngine(Engine):
    """A Gymnasium environment stepped by the loop."""

    env: gymnasium.Env[Any, Any]

    def initialize(self, config: Mapping[str, Any]) -> None:
        extra = engine_extra_configs(
            __file__, config.get("EngineExtraConfigs", {}), f"[{self.name}]"
        )
        try:
            self.env = gymnasium.make(extra["EnvId"], **extra["EnvKwargs"])
        except gymnasium.error.Error as error:
            raise ValueError(f"[{self.name}] EngineExtraConfigs.EnvId: {error}") from None
        dt = getattr(self.env.unwrapped, "dt", None)
        self.dt_ns = round(dt * NS_PER_S) if dt is not None else None
        self._frames(seconds_to_ns(config.get("EngineTimestep", 0), "EngineTimestep"))
        self.action_space = self.env.action_space
        self.action = np.zeros(
            self.action_space.shape or (), dtype=self.action_space.dtype or np.float32
        )
        self._start_episode(seed=None)
        self.episode = 0

    def _frames(self, timestep_ns: int) -> int:
        """Environment steps in ``timestep_ns``: 1 without ``dt``, else a whole multiple."""
        if self.dt_ns is None:
            return 1
        if timestep_ns <= 0 or timestep_ns % self.dt_ns:
            raise ValueError(
                f"[{self.name}] EngineTimestep: expected a whole multiple of the environment's "
                f"dt = {self.dt_ns / NS_PER_S} s. "
                f"Received: EngineTimestep={timestep_ns / NS_PER_S} s"
            )
        return timestep_ns // self.dt_ns

    def _start_episode(self, seed: int | None) -> None:
        self.observation, _ = self.env.reset(seed=seed)
        self.reward = 0.0
        self.terminated = False
        self.truncated = False
        self.episode_return = 0.0

    def reset(self, seed: int | None) -> None:
        self.env.action_space.seed(seed)
        self._start_episode(seed)
        self.episode = 0
        self.action = np.zeros_like(self.action)  # nothing from before the reset acts after it

    def step(self, timestep_ns: int) -> None:
        frames = self._frames(timestep_ns)
        if self.terminated or self.truncated:
            self._start_episode(seed=None)
            self.episode += 1
        self.reward = 0.0
        for _ in range(frames):
            observation, reward, terminated, truncated, _ = self.env.step(self.action)
            self.observation = observation
            self.reward += float(reward)
            self.terminated, self.truncated = bool(terminated), bool(truncated)
            if terminated or truncated:
                break
        self.episode_return += self.reward

    def shutdown(self) -> None:
        self.env.close()

    @property
    def datapack_names(self) -> Sequence[str]:
        return (*OUTPUTS, *INPUTS)

    def get_datapack(self, name: str) -> DataPackValue:
        values: dict[str, DataPackValue] = {
            "observation": np.asarray(self.observation),
            "reward": np.float64(self.reward),
            "terminated": np.bool_(self.terminated),
            "truncated": np.bool_(self.truncated),
            "episode_return": np.float64(self.episode_return),
            "episode": np.int64(self.episode),
            "action": self.action,
        }
        return values[name]

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        if name not in INPUTS:
            raise ValueError(f"[{self.name}] set: expected one of {INPUTS}. Received: {name!r}")
        space = self.action_space
        try:
            action = np.asarray(value, dtype=space.dtype)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"[{self.name}] datapack 'action': expected numbers of dtype {space.dtype}. "
                f"Received: {value!r:.200} ({error})"
            ) from None
        if action.shape != space.shape:
            raise ValueError(
                f"[{self.name}] datapack 'action': expected shape {space.shape}. "
                f"Received: shape {action.shape}"
            )
        if action.dtype.kind == "f" and not np.all(np.isfinite(action)):
            raise ValueError(
                f"[{self.name}] datapack 'action': expected finite values. Received: {action}"
            )
        if not space.contains(action) and not isinstance(space, gymnasium.spaces.Box):
            raise ValueError(
                f"[{self.name}] datapack 'action': expected a member of {space}. Received: {action}"
            )
        self.action = action
