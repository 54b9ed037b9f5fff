"""Status function for the bare arm26 config (and its learned twin): where the hand is."""

from __future__ import annotations

import numpy as np

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import EngineDataPack, SimulationStatus, StatusFunction

ENGINE = "physics"


@EngineDataPack(keyword="hand_position", id=DataPackIdentifier("hand_position", ENGINE))
@StatusFunction()
def arm26_status(hand_position: DataPack) -> tuple[SimulationStatus, list[DataPack]]:
    """Report the hand's mean x and y position (m) over the worlds."""
    status = SimulationStatus()
    if hand_position.data is not None:
        position = np.asarray(hand_position.data, dtype=float)
        status["hand_x"] = round(float(position[:, 0].mean()), 4)
        status["hand_y"] = round(float(position[:, 1].mean()), 4)
    return status, []
