"""``from nrp_core.engines.python_json import EngineScript`` (NRP-core python_json engines)."""

from neuroloop.script_engine import EngineScript

__all__ = ["EngineScript"]
