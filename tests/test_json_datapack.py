"""NRP-core's JsonDataPack starts as JSON null: filled by key it is an object, by append an
array (NRP-core's nest_simple example sends a NEST device one status per node this way)."""

from __future__ import annotations

import pytest

from neuroloop.datapack import JsonDataPack
from neuroloop.protocol import codec
from neuroloop.protocol import engine_pb2 as pb


def sent(datapack: JsonDataPack) -> object:
    wire = codec.encode(datapack.name, datapack.engine_name, datapack.data).SerializeToString()
    return codec.decode(pb.DataPack.FromString(wire))[2]


def test_filled_by_key_it_is_an_object() -> None:
    datapack = JsonDataPack("current", "brain")
    assert sent(datapack) == {}
    datapack.data["amplitude"] = 500.0
    assert sent(datapack) == {"amplitude": 500.0}
    with pytest.raises(AttributeError, match="filled by key"):
        datapack.data.append({"rate": 1.0})


def test_filled_by_append_it_is_an_array() -> None:
    datapack = JsonDataPack("noise", "brain")
    data = datapack.data
    data.append({"rate": 10.0})
    data.append({"rate": 20.0})  # through the first reference, too
    datapack.data.extend([{"rate": 30.0}])
    assert datapack.data == [{"rate": 10.0}, {"rate": 20.0}, {"rate": 30.0}]
    assert sent(datapack) == [{"rate": 10.0}, {"rate": 20.0}, {"rate": 30.0}]


def test_given_data_is_kept_as_given() -> None:
    assert JsonDataPack("x", "e", [1, 2]).data == [1, 2]
    assert type(JsonDataPack("x", "e", {"a": 1}).data) is dict
