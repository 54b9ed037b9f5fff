"""NRP-core's computational graph decorators: ``from nrp_core.event_loop import *``.

NRP-core's MQTT, ROS, SpiNNaker and C++ nodes are stand-ins that refuse in one line.
"""

from neuroloop.graph import (
    Clock,
    FromEngine,
    FromFunctionalNode,
    FunctionalNode,
    Iteration,
    ToEngine,
    node_policies,
    unsupported_node,
)

MQTTSubscriber = unsupported_node("MQTTSubscriber")
MQTTPublisher = unsupported_node("MQTTPublisher")
RosSubscriber = unsupported_node("RosSubscriber")
RosPublisher = unsupported_node("RosPublisher")
FromSpiNNaker = unsupported_node("FromSpiNNaker")
ToSpiNNaker = unsupported_node("ToSpiNNaker")
createFNFromFactoryModule = unsupported_node("createFNFromFactoryModule")  # noqa: N816 (NRP-core)

__all__ = [
    "Clock",
    "FromEngine",
    "FromFunctionalNode",
    "FromSpiNNaker",
    "FunctionalNode",
    "Iteration",
    "MQTTPublisher",
    "MQTTSubscriber",
    "RosPublisher",
    "RosSubscriber",
    "ToEngine",
    "ToSpiNNaker",
    "createFNFromFactoryModule",
    "node_policies",
]
