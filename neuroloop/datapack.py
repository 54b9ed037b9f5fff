"""Datapacks: named values exchanged between the orchestrator and engines.

A datapack is identified by ``(name, engine_name)`` as in NRP-core. Its data is either a
numpy array (sent as a tensor: dtype, shape, raw little-endian bytes) or a JSON value
(``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``). ``data is None`` means the
datapack is empty: the engine has not produced it yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

JsonValue: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool
DataPackValue: TypeAlias = Any
"""A numpy array or scalar (sent as a tensor) or a JSON value. ``Any`` for the type checker,
because callers index into what they know they asked for; the codec checks it at the wire."""

TENSOR_KINDS = "biufc"
"""numpy dtype kinds that travel as tensors: bool, signed/unsigned int, float, complex."""


@dataclass(frozen=True)
class DataPackIdentifier:
    """Names one datapack: its ``name`` and the ``engine_name`` that owns it.

    ``type`` is kept for compatibility with NRP-core user code and is not interpreted.
    """

    name: str
    engine_name: str
    type: str = ""

    def __str__(self) -> str:
        return f"{self.engine_name}/{self.name}"


class DataPack:
    """A named value on its way to or from an engine.

    Args:
        name: The datapack's name inside its engine.
        engine_name: The engine that owns the datapack (the receiver, for datapacks a
            function returns).
        data: A numpy array, a JSON value, or ``None`` for an empty datapack.
    """

    def __init__(self, name: str, engine_name: str, data: DataPackValue = None) -> None:
        self.name = name
        self.engine_name = engine_name
        self.data: Any = data
        self._updated = False

    @property
    def id(self) -> DataPackIdentifier:
        return DataPackIdentifier(self.name, self.engine_name)

    def isEmpty(self) -> bool:
        """True when the engine has not produced this datapack yet (NRP-core name)."""
        return self.data is None

    def isUpdated(self) -> bool:
        """True when the datapack arrived from its engine in the current loop iteration."""
        return self._updated

    def mark_updated(self, updated: bool) -> None:
        """Record whether this datapack arrived in the current loop iteration."""
        self._updated = updated

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.engine_name!r}, data={self.data!r})"


class JsonDataPack(DataPack):
    """A datapack whose data is JSON, created empty and filled by key or by append.

    ``JsonDataPack("action", "physics").data["torque"] = 1.0`` makes an object and
    ``.data.append({"rate": 5.0})`` an array, as NRP-core's JSON (null until written) does.
    """

    def __init__(self, name: str, engine_name: str, data: JsonValue | None = None) -> None:
        super().__init__(name, engine_name, _UnwrittenJson(self) if data is None else data)


class _UnwrittenJson(dict[str, Any]):
    """A JsonDataPack's data before anything is written: an empty object, which its first
    ``append`` replaces (in its datapack) with an array."""

    def __init__(self, owner: DataPack) -> None:
        super().__init__()
        self._owner = owner

    def append(self, value: Any) -> None:
        if self:
            raise AttributeError("a JSON object has no append (it was filled by key)")
        if self._owner.data is self:
            self._owner.data = []
        self._owner.data.append(value)

    def extend(self, values: Any) -> None:
        for value in values:
            self.append(value)


def as_tensor(value: Any, context: str) -> np.ndarray:
    """Return ``value`` as a little-endian numpy array fit for the wire.

    Args:
        value: A numpy array or numpy scalar.
        context: Names the datapack in error messages, e.g. ``"[physics] observation"``.

    Raises:
        ValueError: If the dtype cannot travel as a tensor (object, string, ...).
    """
    array = np.asarray(value)
    if array.dtype.kind not in TENSOR_KINDS:
        raise ValueError(
            f"{context}: expected a numeric or boolean array. Received: dtype={array.dtype}"
        )
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def is_tensor_value(value: Any) -> bool:
    """True when ``value`` travels as a tensor rather than as JSON."""
    return isinstance(value, np.ndarray | np.generic)
