"""The Engine base class: four verbs and named datapacks, with no gRPC inside.

An engine is a small class (NRP-core's engine lifecycle, declared the way Brax declares
``Env``)::

    class Counter(Engine):
        def initialize(self, config): self.count = 0
        def reset(self, seed): self.count = 0
        def step(self, timestep_ns): self.count += 1
        datapack_names = ("count",)
        def get_datapack(self, name): return np.array(self.count)
        def set_datapack(self, name, value): raise ValueError("count is read-only")

``EngineHost`` keeps an engine's absolute time and checks datapack names; the gRPC
servicer in ``neuroloop.server`` wraps a host, and so can any in-process caller.
"""

from __future__ import annotations

import abc
import inspect
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from neuroloop.datapack import DataPackValue
from neuroloop.modules import load_target, split_spec


class Engine(abc.ABC):
    """A simulator or model that advances in time and exchanges named datapacks.

    Args:
        name: The engine's name in the simulation config (``EngineName``); errors use it.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def initialize(self, config: Mapping[str, Any]) -> None:
        """Load models and allocate state from the engine's section of the config."""

    @abc.abstractmethod
    def reset(self, seed: int | None) -> None:
        """Return to the initial state; ``seed`` makes any randomness repeatable."""

    @abc.abstractmethod
    def step(self, timestep_ns: int) -> None:
        """Advance the engine's own state by ``timestep_ns`` nanoseconds."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources. Called once, before the process ends."""

    @property
    @abc.abstractmethod
    def datapack_names(self) -> Sequence[str]:
        """Names of the datapacks this engine offers or accepts."""

    @abc.abstractmethod
    def get_datapack(self, name: str) -> DataPackValue:
        """Return the current value of datapack ``name`` (``None``: not produced yet)."""

    @abc.abstractmethod
    def set_datapack(self, name: str, value: DataPackValue) -> None:
        """Receive datapack ``name``; invalid values raise ``ValueError``."""


class EngineHost:
    """Runs one engine for a caller: keeps its absolute time, checks names, serialises calls.

    Args:
        engine: The engine to host.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.time_ns = 0
        self._lock = threading.Lock()
        self._names: frozenset[str] = frozenset()
        self._shut_down = False
        self._busy: tuple[str, float] | None = None

    def busy(self) -> tuple[str, float]:
        """The verb of the call that holds the engine and for how many seconds ("", 0: none)."""
        busy = self._busy
        return ("", 0.0) if busy is None else (busy[0], time.monotonic() - busy[1])

    @contextmanager
    def _holding(self, verb: str) -> Iterator[None]:
        """Hold the engine for one call, so that calls never overlap and ``busy`` knows it."""
        with self._lock:
            self._busy = (verb, time.monotonic())
            try:
                yield
            finally:
                self._busy = None

    @property
    def name(self) -> str:
        return self.engine.name

    def initialize(self, config: Mapping[str, Any]) -> list[str]:
        with self._holding("initialize"):
            self.engine.initialize(config)
            self.time_ns = 0
            self._names = frozenset(self.engine.datapack_names)
            return sorted(self._names)

    def reset(self, seed: int | None) -> int:
        with self._holding("reset"):
            self.engine.reset(seed)
            self.time_ns = 0
            return self.time_ns

    def step(
        self,
        set_values: Iterable[tuple[str, DataPackValue]],
        timestep_ns: int,
        get_names: Iterable[str],
    ) -> tuple[int, dict[str, DataPackValue]]:
        """Set datapacks, advance by ``timestep_ns`` (0: stay), return the named datapacks."""
        if timestep_ns < 0:
            raise ValueError(
                f"[{self.name}] step: expected a timestep >= 0 ns. Received: {timestep_ns}"
            )
        with self._holding("step"):
            for name, value in set_values:
                self.engine.set_datapack(self._known(name, "set"), value)
            if timestep_ns:
                self.engine.step(timestep_ns)
                self.time_ns += timestep_ns
            values = {
                name: self.engine.get_datapack(self._known(name, "get")) for name in get_names
            }
            return self.time_ns, values

    def shutdown(self) -> int:
        """Shut the engine down once; later calls only report the time."""
        with self._holding("shutdown"):
            if not self._shut_down:
                self._shut_down = True
                self.engine.shutdown()
            return self.time_ns

    def _known(self, name: str, verb: str) -> str:
        if name not in self._names:
            offered = ", ".join(sorted(self._names)) or "none"
            raise ValueError(
                f"[{self.name}] {verb}: expected one of this engine's datapacks ({offered}). "
                f"Received: {name!r}"
            )
        return name


def load_engine_class(spec: str) -> type[Engine]:
    """Find an Engine subclass by ``"module:Class"``, ``"file.py:Class"`` or ``"file.py"``.

    A bare ``file.py`` must define exactly one Engine subclass.

    Raises:
        ValueError: If the module, file or class cannot be found, or is not an Engine.
    """
    target, class_name = split_spec(spec) if not spec.endswith(".py") else (spec, "")
    try:
        module = load_target(target)
    except ValueError as error:
        raise ValueError(f"engine {spec!r}: {error}") from None
    if class_name:
        if not hasattr(module, class_name):
            raise ValueError(
                f"engine {spec!r}: expected {target} to define {class_name}. "
                f"Received: no {class_name} in {target}"
            )
        engine_class = getattr(module, class_name)
    else:
        defined = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, Engine)
            and obj.__module__ == module.__name__
            and not inspect.isabstract(obj)
        ]
        if len(defined) != 1:
            names = [c.__name__ for c in defined]
            raise ValueError(
                f"engine {spec!r}: expected exactly one Engine subclass in the file; name one "
                f"with FILE.py:Class. Received: {names}"
            )
        engine_class = defined[0]
    if not (inspect.isclass(engine_class) and issubclass(engine_class, Engine)):
        raise ValueError(
            f"engine {spec!r}: expected a subclass of neuroloop.engine.Engine. "
            f"Received: {engine_class!r}"
        )
    if inspect.isabstract(engine_class):
        missing = ", ".join(sorted(getattr(engine_class, "__abstractmethods__", ())))
        raise ValueError(
            f"engine {spec!r}: expected an Engine subclass that implements every abstract "
            f"method. Received: {engine_class.__name__} does not implement {missing}"
        )
    return engine_class
