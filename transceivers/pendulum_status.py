"""Status function for the Pendulum-v1 configs: reports the episode return and uprightness."""

from __future__ import annotations

import numpy as np

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import EngineDataPack, SimulationStatus, StatusFunction

ENGINE = "env"
UPRIGHT_COS = 0.95
"""The pendulum counts as upright when cos(theta) exceeds this (about 18 degrees)."""


@EngineDataPack(keyword="observation", id=DataPackIdentifier("observation", ENGINE))
@EngineDataPack(keyword="episode_return", id=DataPackIdentifier("episode_return", ENGINE))
@EngineDataPack(keyword="episode", id=DataPackIdentifier("episode", ENGINE))
@StatusFunction()
def pendulum_status(
    observation: DataPack, episode_return: DataPack, episode: DataPack
) -> tuple[SimulationStatus, list[DataPack]]:
    """Report the current episode's return and whether the pendulum is upright now."""
    status = SimulationStatus()
    if observation.data is not None:
        status["upright"] = bool(np.asarray(observation.data)[0] > UPRIGHT_COS)
        status["episode"] = int(np.asarray(episode.data))
        status["episode_return"] = round(float(np.asarray(episode_return.data)), 2)
    return status, []
