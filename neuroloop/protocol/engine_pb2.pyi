from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ProtoMessage(_message.Message):
    __slots__ = ("type", "data")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    type: str
    data: bytes
    def __init__(self, type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class DataPackId(_message.Message):
    __slots__ = ("name", "engine")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    name: str
    engine: str
    def __init__(self, name: _Optional[str] = ..., engine: _Optional[str] = ...) -> None: ...

class DataPack(_message.Message):
    __slots__ = ("id", "tensor", "json", "proto")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    id: DataPackId
    tensor: Tensor
    json: str
    proto: ProtoMessage
    def __init__(self, id: _Optional[_Union[DataPackId, _Mapping]] = ..., tensor: _Optional[_Union[Tensor, _Mapping]] = ..., json: _Optional[str] = ..., proto: _Optional[_Union[ProtoMessage, _Mapping]] = ...) -> None: ...

class InitializeRequest(_message.Message):
    __slots__ = ("config_json",)
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    config_json: str
    def __init__(self, config_json: _Optional[str] = ...) -> None: ...

class InitializeReply(_message.Message):
    __slots__ = ("time_ns", "datapack_names")
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    DATAPACK_NAMES_FIELD_NUMBER: _ClassVar[int]
    time_ns: int
    datapack_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, time_ns: _Optional[int] = ..., datapack_names: _Optional[_Iterable[str]] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("seed",)
    SEED_FIELD_NUMBER: _ClassVar[int]
    seed: int
    def __init__(self, seed: _Optional[int] = ...) -> None: ...

class TimeReply(_message.Message):
    __slots__ = ("time_ns",)
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    time_ns: int
    def __init__(self, time_ns: _Optional[int] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("set", "timestep_ns", "get")
    SET_FIELD_NUMBER: _ClassVar[int]
    TIMESTEP_NS_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    set: _containers.RepeatedCompositeFieldContainer[DataPack]
    timestep_ns: int
    get: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, set: _Optional[_Iterable[_Union[DataPack, _Mapping]]] = ..., timestep_ns: _Optional[int] = ..., get: _Optional[_Iterable[str]] = ...) -> None: ...

class StepReply(_message.Message):
    __slots__ = ("time_ns", "datapacks")
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    DATAPACKS_FIELD_NUMBER: _ClassVar[int]
    time_ns: int
    datapacks: _containers.RepeatedCompositeFieldContainer[DataPack]
    def __init__(self, time_ns: _Optional[int] = ..., datapacks: _Optional[_Iterable[_Union[DataPack, _Mapping]]] = ...) -> None: ...

class GetDataPacksRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class SetDataPacksRequest(_message.Message):
    __slots__ = ("datapacks",)
    DATAPACKS_FIELD_NUMBER: _ClassVar[int]
    datapacks: _containers.RepeatedCompositeFieldContainer[DataPack]
    def __init__(self, datapacks: _Optional[_Iterable[_Union[DataPack, _Mapping]]] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
