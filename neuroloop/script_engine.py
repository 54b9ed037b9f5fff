"""Run NRP-core Python engine scripts unchanged (``EngineType`` python_json / python_grpc).

An NRP-core engine script defines ``class Script(EngineScript)`` with ``initialize()``,
``runLoop(timestep_ns)``, ``reset()`` and ``shutdown()``, and exchanges datapacks through
``_registerDataPack``, ``_getDataPack`` and ``_setDataPack``; ``_time_ns`` is the engine's
time, ``_name`` its ``EngineName`` and ``_config`` its config section (custom keys
included). ``ScriptEngine`` hosts such a script as a neuroloop Engine with NRP-core's
server semantics: a step advances the script's time first, then calls ``runLoop``, so the
script reads the time its step ends at; a reset calls the script's ``reset()``, then sets
the time back to 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neuroloop.datapack import DataPackValue, is_tensor_value
from neuroloop.engine import Engine
from neuroloop.errors import UserCodeError
from neuroloop.functions import explain_unsupported
from neuroloop.modules import load_file

SCRIPT_CLASS = "Script"
"""The class name NRP-core looks for in an engine script."""


class EngineScript:
    """Base class of NRP-core Python engine scripts (JSON datapacks)."""

    def __init__(self) -> None:
        self._time_ns = 0
        self._name = ""
        self._config: dict[str, Any] = {}
        self._datapacks: dict[str, Any] = {}

    @property
    def _time(self) -> _Nanoseconds:
        """The engine time as an object with ``count()`` (NRP-core's chrono-style accessor)."""
        return _Nanoseconds(self._time_ns)

    def initialize(self) -> None:
        """Register and fill datapacks. Scripts override this."""

    def runLoop(self, timestep_ns: int) -> None:
        """Advance by ``timestep_ns``. Scripts override this."""

    def reset(self) -> None:
        """Return to the initial state. Scripts may override this."""

    def shutdown(self) -> None:
        """Release resources. Scripts may override this."""

    def _getEngineName(self) -> str:
        """The engine's ``EngineName``."""
        return self._name

    def _advanceTime(self, timestep_ns: int) -> None:
        """Move the engine time forward by ``timestep_ns`` (the host does so before runLoop)."""
        self._time_ns += timestep_ns

    def _registerDataPack(self, name: str) -> None:
        """Declare datapack ``name``, empty (``None``) until the script or a function sets it.

        Raises:
            ValueError: If ``name`` is already registered.
        """
        self._register(name, None)

    def _register(self, name: str, initial: Any) -> None:
        if name in self._datapacks:
            raise ValueError(f"[{self._name}] datapack {name!r} is already registered")
        self._datapacks[name] = initial

    def _getRegisteredDataPackNames(self) -> list[str]:
        """Names of the registered datapacks, in registration order."""
        return list(self._datapacks)

    def _getDataPack(self, name: str) -> Any:
        if name not in self._datapacks:
            raise KeyError(f"datapack {name!r} is not registered (call _registerDataPack first)")
        return self._datapacks[name]

    def _setDataPack(self, name: str, data: Any) -> None:
        if name not in self._datapacks:
            raise KeyError(f"datapack {name!r} is not registered (call _registerDataPack first)")
        self._datapacks[name] = data


class GrpcEngineScript(EngineScript):
    """NRP-core's python_grpc script base: each datapack is registered with its message type.

    ``_registerDataPack(name, MessageType)`` stores an empty ``MessageType()``, as NRP-core
    does; without a type the datapack starts empty (``None``) and carries JSON values.
    """

    def _registerDataPack(self, name: str, protobuf_type: type | None = None) -> None:
        """Declare datapack ``name``, holding an empty message of ``protobuf_type`` if given.

        Raises:
            ValueError: If ``name`` is already registered.
            TypeError: If ``protobuf_type`` is not a class.
        """
        if protobuf_type is not None and not isinstance(protobuf_type, type):
            raise TypeError(
                f"[{self._name}] datapack {name!r}: expected a message class. "
                f"Received: protobuf_type={protobuf_type!r}"
            )
        self._register(name, None if protobuf_type is None else protobuf_type())


class _Nanoseconds:
    def __init__(self, value: int) -> None:
        self.value = value

    def count(self) -> int:
        return self.value


class ScriptEngine(Engine):
    """Hosts the ``Script`` class of the file named by the config's ``PythonFileName``."""

    script: EngineScript

    def initialize(self, config: Mapping[str, Any]) -> None:
        path = Path(config["PythonFileName"])
        try:
            module = load_file(path)
        except ValueError as error:
            raise ValueError(f"PythonFileName: {error}") from None
        except UserCodeError as error:
            raise explain_unsupported(error) from error.__cause__
        script_class = getattr(module, SCRIPT_CLASS, None)
        if not (isinstance(script_class, type) and issubclass(script_class, EngineScript)):
            raise ValueError(
                f"{path.name}: expected a class {SCRIPT_CLASS}(EngineScript). "
                f"Received: {SCRIPT_CLASS}={script_class!r}"
            )
        self.script = script_class()
        self.script._name = self.name
        self.script._config = dict(config)
        self.script.initialize()

    def reset(self, seed: int | None) -> None:
        self.script.reset()
        self.script._time_ns = 0

    def step(self, timestep_ns: int) -> None:
        self.script._advanceTime(timestep_ns)
        self.script.runLoop(timestep_ns)

    def shutdown(self) -> None:
        if hasattr(self, "script"):  # not if loading the script failed
            self.script.shutdown()

    @property
    def datapack_names(self) -> Sequence[str]:
        return list(self.script._datapacks)

    def get_datapack(self, name: str) -> DataPackValue:
        value: DataPackValue = self.script._getDataPack(name)
        return value

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        self.script._setDataPack(name, value.tolist() if is_tensor_value(value) else value)
