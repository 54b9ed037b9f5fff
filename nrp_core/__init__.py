"""NRP-core compatibility: ``from nrp_core import *`` in existing function files runs unchanged.

Everything here is neuroloop's own implementation, re-exported under NRP-core's names. New
code should import from ``neuroloop.functions`` and ``neuroloop.datapack``.
"""

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import (
    EngineDataPack,
    PreprocessedDataPack,
    PreprocessingFunction,
    SimulationIteration,
    SimulationTime,
    StatusFunction,
    TransceiverFunction,
    getSimulationIteration,
    getSimulationTime,
)

__all__ = [
    "DataPack",
    "DataPackIdentifier",
    "EngineDataPack",
    "PreprocessedDataPack",
    "PreprocessingFunction",
    "SimulationIteration",
    "SimulationTime",
    "StatusFunction",
    "TransceiverFunction",
    "getSimulationIteration",
    "getSimulationTime",
]
