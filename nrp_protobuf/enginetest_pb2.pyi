from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class TestPayload(_message.Message):
    __slots__ = ("integer", "str")
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    STR_FIELD_NUMBER: _ClassVar[int]
    integer: int
    str: str
    def __init__(self, integer: _Optional[int] = ..., str: _Optional[str] = ...) -> None: ...
