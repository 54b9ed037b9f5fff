"""NRP-core's computational graph: functional nodes wired to engines, each other and time.

A graph file declares nodes with decorators (``nrp_core.event_loop`` re-exports them)::

    @ToEngine(keyword="command", address="/body")
    @FromEngine(keyword="state", address="/body/joint_state")
    @FunctionalNode(name="controller", outputs=["command"])
    def control(state):
        return [JsonDataPack("command", "body", {"torque": -state.data["angle"]})]

Each cycle the graph runs in layers, as NRP-core defines them: input nodes (engine datapacks
that arrived this cycle, the clock, the iteration), then functional nodes in an order where
every edge points forward, then output nodes (datapacks for engines). A functional node
runs if its policy is ``always`` or, with ``on_new_message`` (the default), if one of its
inputs got a new message this cycle; it returns None (publishes nothing) or one value per
declared output. An engine input with cache policy ``clear`` passes None in a cycle its
datapack did not arrive; with ``keep`` (the default) it passes the last one.

Two execution modes: ``AllNodes`` runs every node; ``OutputDriven`` (always used in the
FTILoop, where the graph replaces transceiver functions) runs only the functional nodes that
lead, directly or not, to the engines being stepped in this cycle.
"""

from __future__ import annotations

import abc
import enum
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from neuroloop.datapack import DataPack
from neuroloop.errors import ConfigError, NeuroloopError
from neuroloop.functions import Cycle, DataPackStore, FunctionError, load_function_file


class ExecPolicy(enum.Enum):
    """When a functional node runs (NRP-core's ``exec_policy``)."""

    always = "always"
    on_new_message = "on_new_message"


class MsgCache(enum.Enum):
    """What an input node passes in a cycle without a new message (NRP-core's ``msg_cache``)."""

    keep = "keep"
    clear = "clear"


class MsgPublish(enum.Enum):
    """NRP-core's ``msg_publish``: engine inputs hold one datapack, so both publish it."""

    last = "last"
    all = "all"


node_policies = SimpleNamespace(
    functional_node=SimpleNamespace(exec_policy=ExecPolicy),
    input_node=SimpleNamespace(msg_cache=MsgCache, msg_publish=MsgPublish),
)
"""NRP-core's policy namespace: ``node_policies.functional_node.exec_policy.always``."""


@dataclass(frozen=True)
class EngineInput:
    """A datapack of an engine (``@FromEngine``)."""

    engine: str
    """The engine's name."""
    datapack: str
    """The datapack's name in that engine (it may contain ``/`` or ``::``)."""
    cache: MsgCache
    """What the input passes in a cycle the datapack did not arrive."""


@dataclass(frozen=True)
class NodeInput:
    """An output port of another functional node (``@FromFunctionalNode``)."""

    node: str
    """The producing node's name."""
    port: str
    """Its output port."""


@dataclass(frozen=True)
class TimeInput:
    """The loop's clock in ms (``@Clock``) or its iteration (``@Iteration``)."""

    kind: str
    """``"clock"`` or ``"iteration"``."""


Source = EngineInput | NodeInput | TimeInput


class GraphNode:
    """A Python function as a functional node: its inputs, outputs and the engines they feed.

    Args:
        func: The function; its parameters are the node's input ports.
        name: The node's id, unique in the graph.
        outputs: Names of its output ports, one per value the function returns.
        exec_policy: When the node runs.
    """

    def __init__(
        self, func: Callable[..., Any], name: str, outputs: Sequence[str], exec_policy: ExecPolicy
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name
        self.outputs = list(outputs)
        self.exec_policy = exec_policy
        self.parameters = list(inspect.signature(func).parameters)
        self.inputs: dict[str, Source] = {}
        self.to_engines: dict[str, str] = {}
        """Output port -> the engine whose output node it feeds."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def _parse(address: str, parts: int, what: str) -> list[str]:
    """Split ``/a/b`` into ``parts`` names (the last may contain ``/``)."""
    names = address.split("/", parts)[1:] if address.startswith("/") else []
    if len(names) != parts or not all(names):
        example = "/engine/datapack" if parts == 2 else "/engine"
        raise ValueError(f"{what}: expected an address like {example!r}. Received: {address!r}")
    return names


class FunctionalNode:
    """Make a function a functional node called ``name`` with output ports ``outputs``."""

    def __init__(
        self,
        name: str,
        outputs: Sequence[str],
        exec_policy: ExecPolicy = ExecPolicy.on_new_message,
    ) -> None:
        self.name, self.outputs, self.exec_policy = name, outputs, exec_policy

    def __call__(self, func: Callable[..., Any]) -> GraphNode:
        return GraphNode(func, self.name, self.outputs, self.exec_policy)


class _Connect(abc.ABC):
    """Base of the decorators that connect a port of a functional node."""

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword

    def __call__(self, node: GraphNode) -> GraphNode:
        if not isinstance(node, GraphNode):
            raise TypeError(
                f"@{type(self).__name__}({self.keyword!r}): expected to decorate a "
                f"@FunctionalNode. Received: {node!r:.80}"
            )
        self.connect(node)
        return node

    @abc.abstractmethod
    def connect(self, node: GraphNode) -> None:
        """Record the connection on ``node``."""


class FromFunctionalNode(_Connect):
    """Feed input ``keyword`` from the output port ``address`` (``/node/port``)."""

    def __init__(self, keyword: str, address: str) -> None:
        super().__init__(keyword)
        node, port = _parse(address, 2, f"@FromFunctionalNode({keyword!r})")
        self.source = NodeInput(node, port)

    def connect(self, node: GraphNode) -> None:
        node.inputs[self.keyword] = self.source


class FromEngine(_Connect):
    """Feed input ``keyword`` with datapack ``address`` (``/engine/datapack``)."""

    def __init__(
        self,
        keyword: str,
        address: str,
        cache_policy: MsgCache = MsgCache.keep,
        publish_policy: MsgPublish = MsgPublish.last,
    ) -> None:
        super().__init__(keyword)
        engine, datapack = _parse(address, 2, f"@FromEngine({keyword!r})")
        self.source = EngineInput(engine, datapack, cache_policy)

    def connect(self, node: GraphNode) -> None:
        node.inputs[self.keyword] = self.source


class ToEngine(_Connect):
    """Send what output port ``keyword`` publishes (datapacks) to engine ``address``
    (``/engine``)."""

    def __init__(self, keyword: str, address: str) -> None:
        super().__init__(keyword)
        [self.engine] = _parse(address, 1, f"@ToEngine({keyword!r})")

    def connect(self, node: GraphNode) -> None:
        node.to_engines[self.keyword] = self.engine


class Clock(_Connect):
    """Feed input ``keyword`` with the loop's clock in milliseconds: simulated time in the
    FTILoop, wall-clock time since the start in the EventLoop."""

    def connect(self, node: GraphNode) -> None:
        node.inputs[self.keyword] = TimeInput("clock")


class Iteration(_Connect):
    """Feed input ``keyword`` with the number of times the loop has run."""

    def connect(self, node: GraphNode) -> None:
        node.inputs[self.keyword] = TimeInput("iteration")


class UnsupportedNodeError(NeuroloopError):
    """A graph file uses an NRP-core node kind that neuroloop does not run."""


UNSUPPORTED_NODES = {
    "MQTTSubscriber": "MQTT nodes",
    "MQTTPublisher": "MQTT nodes",
    "RosSubscriber": "ROS nodes",
    "RosPublisher": "ROS nodes",
    "FromSpiNNaker": "SpiNNaker nodes",
    "ToSpiNNaker": "SpiNNaker nodes",
    "createFNFromFactoryModule": "C++ functional nodes",
}
"""NRP-core graph decorators and factories neuroloop refuses, with what they are."""


def unsupported_node(name: str) -> Callable[..., Any]:
    """A stand-in for NRP-core's ``name`` that refuses, naming what is unsupported."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedNodeError(
            f"{name}: NRP-core's {UNSUPPORTED_NODES[name]} are not supported by neuroloop"
        )

    return refuse


@dataclass
class _Port:
    """The last value an output port published, and the cycle it did."""

    value: Any = None
    cycle: int = -1


class ComputationalGraph:
    """The nodes of a simulation's graph files, in execution order, and their port values.

    Use ``load_graph``. The graph has the FTILoop interface of ``FunctionManager``.

    Args:
        nodes: The functional nodes, every producer before its consumers.
        output_driven: Run only the nodes leading to the engines of a cycle (else all).
    """

    def __init__(self, nodes: list[GraphNode], output_driven: bool = True) -> None:
        self.nodes = nodes
        self.output_driven = output_driven
        self.last_status: dict[str, Any] = {}
        self.task: object | None = None
        self._ports: dict[tuple[str, str], _Port] = {}
        self._cycle = 0

    @property
    def status(self) -> None:
        """A graph has no status function."""
        return None

    def requested(self, engine: str, constant: bool = False) -> list[str]:
        """Names of the datapacks input nodes read from ``engine`` (none are constant)."""
        if constant:
            return []
        return sorted(
            {
                source.datapack
                for node in self.nodes
                for source in node.inputs.values()
                if isinstance(source, EngineInput) and source.engine == engine
            }
        )

    def run(self, due: Iterable[str], store: DataPackStore, time_ns: int, iteration: int) -> Cycle:
        """Run one cycle for the engines in ``due``; return the datapacks for them."""
        self._cycle += 1
        due = set(due)
        selected = self._leading_to(due) if self.output_driven else None
        outgoing: list[DataPack] = []
        for node in self.nodes:
            if selected is not None and node.name not in selected:
                continue
            arguments, fresh = self._arguments(node, store, time_ns, iteration)
            if node.exec_policy is ExecPolicy.on_new_message and not fresh:
                continue
            self._publish(node, self._call(node, arguments, time_ns))
            for port, engine in node.to_engines.items():
                published = self._ports[(node.name, port)]
                if published.cycle == self._cycle and engine in due:
                    outgoing += _datapacks_for(node, port, engine, published.value)
        return Cycle(False, outgoing, [])

    def _leading_to(self, engines: set[str]) -> set[str]:
        """Names of the nodes that feed the output nodes of ``engines``, directly or not."""
        selected = {n.name for n in self.nodes if set(n.to_engines.values()) & engines}
        for node in reversed(self.nodes):  # consumers come after their producers
            if node.name in selected:
                selected |= {s.node for s in node.inputs.values() if isinstance(s, NodeInput)}
        return selected

    def _arguments(
        self, node: GraphNode, store: DataPackStore, time_ns: int, iteration: int
    ) -> tuple[dict[str, Any], bool]:
        arguments: dict[str, Any] = dict.fromkeys(node.parameters)
        fresh = False
        for keyword, source in node.inputs.items():
            if isinstance(source, EngineInput):
                datapack = store.engine.get(DataPack(source.datapack, source.engine).id)
                new = datapack is not None and datapack.isUpdated()
                keep = source.cache is MsgCache.keep
                arguments[keyword] = datapack if new or keep else None
            elif isinstance(source, NodeInput):
                port = self._ports.get((source.node, source.port), _Port())
                new = port.cycle == self._cycle
                arguments[keyword] = port.value
            else:
                new = True
                arguments[keyword] = time_ns // 1_000_000 if source.kind == "clock" else iteration
            fresh = fresh or new
        return arguments, fresh

    def _call(self, node: GraphNode, arguments: dict[str, Any], time_ns: int) -> Any:
        try:
            return node(**arguments)
        except NeuroloopError:
            raise
        except Exception as error:
            raise FunctionError(
                f"functional node {node.name!r} raised at t={time_ns} ns: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _publish(self, node: GraphNode, result: Any) -> None:
        if result is None:
            return
        if not isinstance(result, list | tuple) or len(result) != len(node.outputs):
            raise FunctionError(
                f"functional node {node.name!r}: expected None or a list of "
                f"{len(node.outputs)} value(s), one per output {node.outputs}. "
                f"Received: {result!r:.200}"
            )
        for port, value in zip(node.outputs, result, strict=True):
            self._ports[(node.name, port)] = _Port(value, self._cycle)


def _datapacks_for(node: GraphNode, port: str, engine: str, value: Any) -> list[DataPack]:
    datapacks = value if isinstance(value, list | tuple) else [value]
    for datapack in datapacks:
        if not isinstance(datapack, DataPack) or datapack.engine_name != engine:
            raise FunctionError(
                f"functional node {node.name!r}, output {port!r}: expected datapacks for "
                f"engine {engine!r}. Received: {datapack!r:.200}"
            )
    return list(datapacks)


def graph_nodes(module: ModuleType) -> list[GraphNode]:
    """The functional nodes a module defines, in definition order."""
    return [obj for obj in vars(module).values() if isinstance(obj, GraphNode)]


def load_graph(
    files: Sequence[Path],
    engines: Sequence[str],
    config_file: str,
    modules: dict[Path, ModuleType] | None = None,
    output_driven: bool = True,
) -> ComputationalGraph:
    """Load the graph files of a config, check the graph and order its nodes.

    Raises:
        ConfigError: If node names repeat, an address names no such engine, node or port,
            an input is not a parameter of its function, or the nodes form a cycle.
    """
    nodes: dict[str, GraphNode] = {}
    for index, file in enumerate(files):
        where = f"ComputationalGraph[{index}]"
        for node in graph_nodes(load_function_file(file, modules)):
            if node.name in nodes and nodes[node.name] is not node:
                raise ConfigError(
                    config_file, where, f"a unique node name in {file.name}", node.name
                )
            nodes[node.name] = node
            _check_node(node, engines, config_file, where, file)
    for node in nodes.values():
        for keyword, source in node.inputs.items():
            if isinstance(source, NodeInput):
                producer = nodes.get(source.node)
                if producer is None or source.port not in producer.outputs:
                    raise ConfigError(
                        config_file,
                        "ComputationalGraph",
                        f"node {node.name!r} input {keyword!r} to name an output of a "
                        f"functional node ({', '.join(f'/{n}' for n in nodes)})",
                        f"/{source.node}/{source.port}",
                    )
    return ComputationalGraph(_ordered(nodes, config_file), output_driven)


def _check_node(
    node: GraphNode, engines: Sequence[str], config_file: str, where: str, file: Path
) -> None:
    named = [s.engine for s in node.inputs.values() if isinstance(s, EngineInput)]
    for engine in [*named, *node.to_engines.values()]:
        if engine not in engines:
            raise ConfigError(
                config_file,
                where,
                f"node {node.name!r} in {file.name} to name one of the simulation's engines "
                f"({', '.join(engines) or 'none'})",
                f"engine={engine!r}",
            )
    for keyword in node.inputs:
        if keyword not in node.parameters:
            raise ConfigError(
                config_file, where, f"a parameter of node {node.name!r}'s function", keyword
            )
    for port in node.to_engines:
        if port not in node.outputs:
            raise ConfigError(
                config_file, where, f"@ToEngine on an output of node {node.name!r}", port
            )


def _ordered(nodes: dict[str, GraphNode], config_file: str) -> list[GraphNode]:
    """The nodes with every producer before its consumers (NRP-core's layers, flattened)."""
    ordered: list[GraphNode] = []
    placed: set[str] = set()
    waiting = list(nodes.values())
    while waiting:
        ready = [
            node
            for node in waiting
            if all(s.node in placed for s in node.inputs.values() if isinstance(s, NodeInput))
        ]
        if not ready:
            names = ", ".join(node.name for node in waiting)
            raise ConfigError(
                config_file, "ComputationalGraph", "a graph without cycles", f"nodes {names}"
            )
        ordered += ready
        placed |= {node.name for node in ready}
        waiting = [node for node in waiting if node.name not in placed]
    return ordered
