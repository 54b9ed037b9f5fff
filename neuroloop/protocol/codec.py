"""numpy / JSON / NRP-core message values <-> protobuf datapacks.

The only place that builds datapack messages. A value that is a message of one of
``nrp_protobuf``'s packages travels as its type name and serialized bytes and comes back as
a message of the same type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError, Message

from neuroloop.datapack import TENSOR_KINDS, DataPackValue, as_tensor, is_tensor_value
from neuroloop.protocol import engine_pb2 as pb
from neuroloop.protocol.messages import message_class


def encode(
    name: str, engine: str, value: DataPackValue, packages: Collection[str] | None = None
) -> pb.DataPack:
    """Build a wire datapack from a numpy array (tensor), an NRP-core message or a JSON value.

    ``packages`` limits messages to those packages (an engine's ``ProtobufPackages``).

    Raises:
        ValueError: If the value is neither a numeric array, a message of a known package,
            nor JSON-serialisable.
    """
    message = pb.DataPack(id=pb.DataPackId(name=name, engine=engine))
    if isinstance(value, Message):
        type_name = value.DESCRIPTOR.full_name
        message_class(type_name, f"[{engine}] datapack {name!r}", packages)
        message.proto.type = type_name
        message.proto.data = value.SerializeToString()
    elif is_tensor_value(value):
        array = as_tensor(value, f"[{engine}] datapack {name!r}")
        message.tensor.dtype = array.dtype.str
        message.tensor.shape.extend(array.shape)
        message.tensor.data = array.tobytes()
    else:
        try:
            message.json = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"[{engine}] datapack {name!r}: expected a numpy array or a JSON value "
                f"(finite numbers, str, bool, list, dict). Received: {type(value).__name__} "
                f"({error})"
            ) from None
    return message


def decode(
    message: pb.DataPack, packages: Collection[str] | None = None
) -> tuple[str, str, DataPackValue]:
    """Return ``(name, engine, value)`` for a wire datapack; an unset payload is ``None``.

    ``packages`` limits messages to those packages (an engine's ``ProtobufPackages``).

    A tensor comes back as a writable little-endian array, whatever byte order it was sent in.

    Raises:
        ValueError: If the JSON is malformed or holds NaN or an infinity, the tensor's dtype is
            not numeric, or its bytes do not match its shape, or a message's type is unknown
            or its bytes do not parse as that type.
    """
    name, engine = message.id.name, message.id.engine
    context = f"[{engine}] datapack {name!r}"
    payload = message.WhichOneof("payload")
    if payload is None:
        return name, engine, None
    if payload == "json":
        try:
            value: Any = json.loads(message.json, parse_constant=_reject_constant)
        except json.JSONDecodeError as error:
            raise ValueError(f"{context}: expected a JSON document. Received: {error}") from None
        except _NonFiniteError as error:
            raise ValueError(
                f"{context}: expected JSON with finite numbers. Received: {error.args[0]}"
            ) from None
        return name, engine, value
    if payload == "proto":
        return name, engine, _parse(message.proto, context, packages)
    tensor = message.tensor
    try:
        dtype = np.dtype(tensor.dtype)
    except (TypeError, ValueError, SyntaxError):
        raise ValueError(f"{context}: unknown dtype. Received: dtype={tensor.dtype!r}") from None
    if dtype.kind not in TENSOR_KINDS:
        raise ValueError(f"{context}: expected a numeric dtype. Received: dtype={tensor.dtype!r}")
    shape = tuple(tensor.shape)
    if any(size < 0 for size in shape):
        raise ValueError(f"{context}: expected sizes >= 0 in the shape. Received: shape={shape}")
    expected_bytes = math.prod(shape) * dtype.itemsize
    if expected_bytes != len(tensor.data):
        raise ValueError(
            f"{context}: shape {shape} of dtype {dtype.str} needs {expected_bytes} bytes. "
            f"Received: {len(tensor.data)} bytes"
        )
    array = np.frombuffer(tensor.data, dtype=dtype).reshape(shape)
    return name, engine, array.astype(dtype.newbyteorder("<"))


def _parse(proto: pb.ProtoMessage, context: str, packages: Collection[str] | None) -> Message:
    parsed = message_class(proto.type, context, packages)()
    try:
        parsed.ParseFromString(proto.data)
    except DecodeError as error:
        raise ValueError(
            f"{context}: expected a serialized {proto.type}. Received: {error}"
        ) from None
    return parsed


class _NonFiniteError(ValueError):
    """A JSON document holds NaN, Infinity or -Infinity (which strict JSON does not allow)."""


def _reject_constant(constant: str) -> Any:
    raise _NonFiniteError(constant)
