"""NRP-core's JSON datapacks: ``from nrp_core.data.nrp_json import JsonDataPack, JsonRawData``."""

from neuroloop.datapack import JsonDataPack
from neuroloop.functions import JsonRawData, SimulationStatus

__all__ = ["JsonDataPack", "JsonRawData", "SimulationStatus"]
