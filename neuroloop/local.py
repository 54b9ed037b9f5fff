"""Engines stepped in the orchestrator's own process, behind the same interface as a client.

``Simulation(config, local=True)`` runs every engine of a config this way (the in-process
baseline the benchmarks compare the orchestrated loop against); ``local={"brain": engine}``
puts a given Engine object in place of one configured engine (how ``neuroloop.gym`` lets a
Gymnasium agent take the brain's place). Steps run synchronously, one engine after another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine, EngineHost
from neuroloop.loop import PendingStep


class EngineLink(Protocol):
    """How a simulation talks to one engine: ``EngineClient`` over gRPC, or in-process."""

    name: str
    time_ns: int

    def initialize(self, config: Mapping[str, Any]) -> list[str]: ...

    def reset(self, seed: int | None) -> int: ...

    def step_async(
        self, to_set: Mapping[str, DataPackValue], timestep_ns: int, get: Sequence[str]
    ) -> PendingStep: ...

    def get_datapacks(self, names: Iterable[str]) -> dict[str, DataPackValue]: ...

    def set_datapacks(self, values: Mapping[str, DataPackValue]) -> None: ...

    def shutdown(self, timeout_s: float | None = None) -> None: ...

    def close(self) -> None: ...


class FinishedStep:
    """A step that already ran; ``result()`` returns its datapacks."""

    def __init__(self, values: dict[str, DataPackValue]) -> None:
        self._values = values

    def result(self) -> dict[str, DataPackValue]:
        return self._values

    def cancel(self) -> None:
        """Nothing to cancel: the step has run."""


class LocalEngine:
    """An Engine in this process, called like ``EngineClient``.

    Args:
        engine: The engine to host.
    """

    def __init__(self, engine: Engine) -> None:
        self.host = EngineHost(engine)
        self.name = engine.name
        self.time_ns = 0

    def initialize(self, config: Mapping[str, Any]) -> list[str]:
        names = self.host.initialize(config)
        self.time_ns = self.host.time_ns
        return names

    def reset(self, seed: int | None) -> int:
        self.time_ns = self.host.reset(seed)
        return self.time_ns

    def step_async(
        self, to_set: Mapping[str, DataPackValue], timestep_ns: int, get: Sequence[str]
    ) -> FinishedStep:
        self.time_ns, values = self.host.step(to_set.items(), timestep_ns, get)
        return FinishedStep(values)

    def get_datapacks(self, names: Iterable[str]) -> dict[str, DataPackValue]:
        return self.host.step((), 0, names)[1]

    def set_datapacks(self, values: Mapping[str, DataPackValue]) -> None:
        self.host.step(values.items(), 0, ())

    def shutdown(self, timeout_s: float | None = None) -> None:
        self.host.shutdown()

    def close(self) -> None:
        """Nothing to close: no channel."""
