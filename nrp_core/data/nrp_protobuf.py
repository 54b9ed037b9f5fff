"""NRP-core's protobuf datapacks: ``from nrp_core.data.nrp_protobuf import DumpStringDataPack``.

For each message ``Package.Message`` of the packages neuroloop compiles (Dump, EngineTest,
NrpGenericProto, Wrappers) this module offers, under NRP-core's names:

- ``PackageMessage``: the message class itself;
- ``PackageMessageDataPack(name, engine_name)``: a datapack whose ``data`` is an empty message;
- ``PackageMessageRawData()``: data with no datapack id (a status function's trajectory).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from neuroloop.datapack import DataPack
from neuroloop.protocol.messages import MESSAGE_CLASSES


class ProtobufDataPack(DataPack):
    """A datapack holding a protobuf message; subclasses fix the message type."""

    message_type: type[Message]

    def __init__(self, name: str, engine_name: str, data: Message | None = None) -> None:
        super().__init__(name, engine_name, self.message_type() if data is None else data)


class ProtobufRawData(DataPack):
    """A protobuf message with no name or engine; subclasses fix the message type."""

    message_type: type[Message]

    def __init__(self, data: Message | None = None) -> None:
        super().__init__("", "", self.message_type() if data is None else data)


def _wrappers() -> dict[str, Any]:
    names: dict[str, Any] = {}
    for full_name, message_type in MESSAGE_CLASSES.items():
        prefix = full_name.replace(".", "")
        names[prefix] = message_type
        for base in (ProtobufDataPack, ProtobufRawData):
            suffix = base.__name__.removeprefix("Protobuf")
            cls = type(f"{prefix}{suffix}", (base,), {"message_type": message_type})
            cls.__module__ = __name__
            names[cls.__name__] = cls
    return names


_NAMES = _wrappers()
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    try:
        return _NAMES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
