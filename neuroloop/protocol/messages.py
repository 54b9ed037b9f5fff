"""NRP-core's protobuf message packages as datapack values, looked up by type name.

The packages are the ones ``nrp_protobuf`` compiles (``Dump``, ``EngineTest``,
``NrpGenericProto``, ``Wrappers``), all loaded when this module is; a type name read from the
wire only selects among their message classes, so the wire never causes an import.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType, ModuleType

from google.protobuf.message import Message

from nrp_protobuf import dump_pb2, enginetest_pb2, nrpgenericproto_pb2, wrappers_pb2

PACKAGES: Mapping[str, ModuleType] = MappingProxyType(
    {
        "Dump": dump_pb2,
        "EngineTest": enginetest_pb2,
        "NrpGenericProto": nrpgenericproto_pb2,
        "Wrappers": wrappers_pb2,
    }
)
"""``ProtobufPackages`` names and the generated module of each."""


def _message_classes() -> dict[str, type[Message]]:
    classes: dict[str, type[Message]] = {}
    for module in PACKAGES.values():
        for name in module.DESCRIPTOR.message_types_by_name:
            message_class = getattr(module, name)
            classes[message_class.DESCRIPTOR.full_name] = message_class
    return classes


MESSAGE_CLASSES: Mapping[str, type[Message]] = MappingProxyType(_message_classes())
"""Every message class of ``PACKAGES`` by full type name, e.g. ``"Dump.String"``."""


def message_class(
    type_name: str, context: str, packages: Collection[str] | None = None
) -> type[Message]:
    """The message class of ``type_name`` (``"Package.Message"``).

    Args:
        type_name: The message's full type name.
        context: Names the datapack in errors, e.g. ``"[physics] datapack 'text'"``.
        packages: The packages allowed (an engine's ``ProtobufPackages``); None: all.

    Raises:
        ValueError: If no package in ``PACKAGES`` defines that message, or its package is
            not among ``packages``.
    """
    if type_name not in MESSAGE_CLASSES:
        raise ValueError(
            f"{context}: expected a message type of the packages {', '.join(PACKAGES)}. "
            f"Received: type={type_name!r:.100}"
        )
    if packages is not None and type_name.partition(".")[0] not in packages:
        raise ValueError(
            f"{context}: expected a message of the engine's ProtobufPackages "
            f"({', '.join(packages) or 'none'}). Received: type={type_name!r}"
        )
    return MESSAGE_CLASSES[type_name]
