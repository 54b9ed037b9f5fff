"""Run NRP-core Python engine scripts unchanged (``EngineType`` python_json / python_grpc).

An NRP-core engine script defines ``class Script(EngineScript)`` with ``initialize()``,
``runLoop(timestep_ns)``, ``reset()`` and ``shutdown()``, and exchanges JSON datapacks
through ``_registerDataPack``, ``_getDataPack`` and ``_setDataPack``; ``_time_ns`` is the
engine's time and ``_config`` its config section. ``ScriptEngine`` hosts such a script as
a neuroloop Engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neuroloop.datapack import DataPackValue, is_tensor_value
from neuroloop.engine import Engine
from neuroloop.modules import load_file

SCRIPT_CLASS = "Script"
"""The class name NRP-core looks for in an engine script."""


class EngineScript:
    """Base class of NRP-core Python engine scripts (JSON datapacks)."""

    def __init__(self) -> None:
        self._time_ns = 0
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

    def _registerDataPack(self, name: str, *_proto_type: object) -> None:
        self._datapacks.setdefault(name, None)

    def _getDataPack(self, name: str) -> Any:
        if name not in self._datapacks:
            raise KeyError(f"datapack {name!r} is not registered (call _registerDataPack first)")
        return self._datapacks[name]

    def _setDataPack(self, name: str, data: Any) -> None:
        if name not in self._datapacks:
            raise KeyError(f"datapack {name!r} is not registered (call _registerDataPack first)")
        self._datapacks[name] = data


class GrpcEngineScript(EngineScript):
    """NRP-core's python_grpc script base; neuroloop supports it with JSON datapacks."""


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
        script_class = getattr(module, SCRIPT_CLASS, None)
        if not (isinstance(script_class, type) and issubclass(script_class, EngineScript)):
            raise ValueError(
                f"{path.name}: expected a class {SCRIPT_CLASS}(EngineScript). "
                f"Received: {SCRIPT_CLASS}={script_class!r}"
            )
        self.script = script_class()
        self.script._config = dict(config)
        self.script.initialize()

    def reset(self, seed: int | None) -> None:
        self.script._time_ns = 0
        self.script.reset()

    def step(self, timestep_ns: int) -> None:
        self.script.runLoop(timestep_ns)
        self.script._time_ns += timestep_ns

    def shutdown(self) -> None:
        self.script.shutdown()

    @property
    def datapack_names(self) -> Sequence[str]:
        return list(self.script._datapacks)

    def get_datapack(self, name: str) -> DataPackValue:
        value: DataPackValue = self.script._getDataPack(name)
        return value

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        self.script._setDataPack(name, value.tolist() if is_tensor_value(value) else value)
