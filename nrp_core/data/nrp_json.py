"""NRP-core's JSON datapacks: ``from nrp_core.data.nrp_json import JsonDataPack``."""

from neuroloop.datapack import JsonDataPack
from neuroloop.functions import SimulationStatus

__all__ = ["JsonDataPack", "SimulationStatus"]
