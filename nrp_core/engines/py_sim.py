"""``from nrp_core.engines.py_sim import PySimEngineScript`` (NRP-core py_sim engines)."""

from neuroloop.plugins.engines.py_sim_engine import (
    PySimEngineScript,
    PySimGrpcEngineScript,
    SimulatorManager,
)

__all__ = ["PySimEngineScript", "PySimGrpcEngineScript", "SimulatorManager"]
