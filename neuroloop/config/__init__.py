"""Simulation configs: read (``document``), override (``overrides``), validate (``schema``), freeze
(``model``). ``load_config`` is the entry point; see ``neuroloop.config.model``."""

from neuroloop.config.document import load_document
from neuroloop.config.model import (
    EngineConfig,
    ExternalProcessConfig,
    FunctionConfig,
    SimulationConfig,
    TaskConfig,
    load_config,
    seconds_to_ns,
)
from neuroloop.config.schema import SIMULATION_SCHEMA, engine_extra_configs
from neuroloop.config.text import JsonPath

__all__ = [
    "SIMULATION_SCHEMA",
    "EngineConfig",
    "ExternalProcessConfig",
    "FunctionConfig",
    "JsonPath",
    "SimulationConfig",
    "TaskConfig",
    "engine_extra_configs",
    "load_config",
    "load_document",
    "seconds_to_ns",
]
