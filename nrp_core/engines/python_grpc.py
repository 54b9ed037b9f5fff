"""``from nrp_core.engines.python_grpc import GrpcEngineScript``, served with JSON datapacks."""

from neuroloop.script_engine import GrpcEngineScript

__all__ = ["GrpcEngineScript"]
