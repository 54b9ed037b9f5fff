"""Functions that let a Keras brain drive Gymnasium's Pendulum-v1 (one world).

The observation [cos, sin, theta_dot] becomes the brain's ``proprioception`` (with a world
axis); the brain's Beta sample in [0, 1] becomes a torque in [-MAX_TORQUE, MAX_TORQUE].
``episode_start`` tells the brain when the environment has begun a new episode.
"""

from __future__ import annotations

import numpy as np

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import (
    EngineDataPack,
    SimulationStatus,
    SimulationTime,
    StatusFunction,
    TransceiverFunction,
)

ENV = "env"
BRAIN = "brain"
MAX_TORQUE = 2.0
"""Pendulum-v1's torque bound."""
RECENT_EPISODES = 20
"""Episodes the status report averages over."""


class _Episodes:
    """Tracks the environment's episode counter and recent episode returns."""

    def __init__(self) -> None:
        self.current = -1
        self.returns: list[float] = []


EPISODES = _Episodes()


@EngineDataPack("observation", DataPackIdentifier("observation", ENV))
@EngineDataPack("episode", DataPackIdentifier("episode", ENV))
@SimulationTime("now")
@TransceiverFunction(BRAIN)
def to_brain(observation: DataPack, episode: DataPack, now: int) -> list[DataPack]:
    """Observation -> proprioception [1, 3]; a new episode (or a reset) -> episode_start."""
    if observation.data is None or episode.data is None:
        return []
    number = int(np.asarray(episode.data))
    start = now == 0 or number != EPISODES.current
    EPISODES.current = number
    return [
        DataPack("proprioception", BRAIN, np.asarray(observation.data, np.float32)[None]),
        DataPack("episode_start", BRAIN, np.array([start])),
    ]


@EngineDataPack("action", DataPackIdentifier("action", BRAIN))
@TransceiverFunction(ENV)
def to_env(action: DataPack) -> list[DataPack]:
    """Beta sample [1, 1] in [0, 1] -> torque [1] in [-MAX_TORQUE, MAX_TORQUE]."""
    if action.data is None:
        return []
    fraction = float(np.asarray(action.data).reshape(-1)[0])
    torque = (1.0 - fraction) * -MAX_TORQUE + fraction * MAX_TORQUE
    return [DataPack("action", ENV, np.array([torque], np.float32))]


@EngineDataPack("episode_return", DataPackIdentifier("episode_return", ENV))
@EngineDataPack("terminated", DataPackIdentifier("terminated", ENV))
@EngineDataPack("truncated", DataPackIdentifier("truncated", ENV))
@StatusFunction()
def status(episode_return: DataPack, terminated: DataPack, truncated: DataPack) -> SimulationStatus:
    """Mean return over the last RECENT_EPISODES finished episodes."""
    report = SimulationStatus()
    if terminated.isUpdated() and (bool(terminated.data) or bool(truncated.data)):
        EPISODES.returns.append(float(np.asarray(episode_return.data)))
    recent = EPISODES.returns[-RECENT_EPISODES:]
    report["episodes"] = len(EPISODES.returns)
    if recent:
        report["mean_return"] = round(float(np.mean(recent)), 2)
    return report
