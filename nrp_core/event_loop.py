"""NRP-core's computational graph decorators: ``from nrp_core.event_loop import *``."""

from neuroloop.graph import (
    Clock,
    FromEngine,
    FromFunctionalNode,
    FunctionalNode,
    Iteration,
    ToEngine,
    node_policies,
)

__all__ = [
    "Clock",
    "FromEngine",
    "FromFunctionalNode",
    "FunctionalNode",
    "Iteration",
    "ToEngine",
    "node_policies",
]
