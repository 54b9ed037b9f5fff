"""NRP-core's protobuf datapacks: message packages, wrappers, the wire, and an experiment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from neuroloop.errors import EngineError
from neuroloop.protocol import codec
from neuroloop.protocol import engine_pb2 as pb
from neuroloop.simulation import Simulation
from nrp_core.data import nrp_protobuf
from nrp_protobuf import dump_pb2, enginetest_pb2, nrpgenericproto_pb2, wrappers_pb2
from tests.processes import FIXTURES, engine_processes

CONFIG = FIXTURES / "nrp_examples" / "protobuf" / "simulation_config.json"


def over_the_wire(value: Any) -> Any:
    wire = codec.encode("text", "physics", value).SerializeToString()
    name, engine, decoded = codec.decode(pb.DataPack.FromString(wire))
    assert (name, engine) == ("text", "physics")
    return decoded


def test_messages_cross_the_wire_as_messages_of_their_type() -> None:
    text = dump_pb2.String(string_stream="héllo")
    assert over_the_wire(text) == text and type(over_the_wire(text)) is dump_pb2.String
    array = nrpgenericproto_pb2.ArrayInt32(array=[0, 1, 2, 3, 4, 5], shape=[2, 3])
    decoded = over_the_wire(array)
    assert list(decoded.array) == [0, 1, 2, 3, 4, 5] and list(decoded.shape) == [2, 3]
    image = nrpgenericproto_pb2.Image(type=nrpgenericproto_pb2.IMAGE_TYPE.RGB8, data=b"\x00\x01")
    assert over_the_wire(image).type == 1  # NRP-core's examples check RGB8 == 1
    assert over_the_wire(wrappers_pb2.BoolValue(value=True)).value is True
    assert over_the_wire(enginetest_pb2.TestPayload(integer=555, str="x")).integer == 555
    # An empty message is still a message (not an empty datapack).
    assert over_the_wire(dump_pb2.String()) == dump_pb2.String()


def test_the_wire_carries_type_name_and_bytes_never_a_pickle() -> None:
    message = codec.encode("text", "physics", dump_pb2.String(string_stream="abc"))
    assert message.WhichOneof("payload") == "proto"
    assert message.proto.type == "Dump.String"
    assert dump_pb2.String.FromString(message.proto.data).string_stream == "abc"


def test_an_unknown_or_damaged_message_is_a_clear_error() -> None:
    unknown = pb.DataPack(id=pb.DataPackId(name="text", engine="physics"))
    unknown.proto.type = "os.system"
    with pytest.raises(ValueError, match=r"\[physics\] datapack 'text': expected a message type"):
        codec.decode(unknown)
    damaged = pb.DataPack(id=pb.DataPackId(name="text", engine="physics"))
    damaged.proto.type = "Dump.String"
    damaged.proto.data = b"\xff\xff\xff"
    with pytest.raises(ValueError, match=r"expected a serialized Dump\.String"):
        codec.decode(damaged)
    # A message of a package neuroloop does not compile cannot be sent either.
    with pytest.raises(ValueError, match="expected a message type of the packages"):
        codec.encode("check", "physics", pb.DataPackId(name="x"))


def test_datapack_and_raw_data_wrappers_have_nrp_core_names() -> None:
    namespace: dict[str, Any] = {}
    exec("from nrp_core.data.nrp_protobuf import *", namespace)
    for name in ("DumpString", "DumpArrayFloat", "EngineTestTestPayload", "WrappersInt32Value"):
        assert {name, f"{name}DataPack", f"{name}RawData"} <= namespace.keys()
    assert namespace["NrpGenericProtoImage"] is nrpgenericproto_pb2.Image

    datapack = nrp_protobuf.DumpArrayFloatDataPack("values", "logger")
    datapack.data.float_stream.extend([1.5, 2.5])
    assert (datapack.name, datapack.engine_name) == ("values", "logger")
    assert isinstance(datapack.data, dump_pb2.ArrayFloat)
    assert list(datapack.data.float_stream) == [1.5, 2.5]
    # Each wrapper starts with a message of its own.
    assert not nrp_protobuf.DumpArrayFloatDataPack("values", "logger").data.float_stream

    raw = nrp_protobuf.EngineTestTestPayloadRawData()
    raw.data.integer = 3
    assert isinstance(raw.data, enginetest_pb2.TestPayload) and raw.data.integer == 3
    with pytest.raises(AttributeError):
        _ = nrp_protobuf.DumpNoSuchDataPack


def test_protobuf_packages_outside_the_compiled_ones_are_refused(tmp_path: Path) -> None:
    from neuroloop.config.model import load_config
    from neuroloop.errors import ConfigError

    config = CONFIG.read_text().replace('"Wrappers"]', '"MyPackage"]')
    (tmp_path / "simulation_config.json").write_text(config)
    with pytest.raises(ConfigError, match="ProtobufPackages"):
        load_config(tmp_path / "simulation_config.json")


def test_an_nrp_style_grpc_experiment_exchanges_protobuf_datapacks() -> None:
    with Simulation.from_config(CONFIG, echo_engine_output=False) as sim:
        sim.run_until_timeout()
        count = sim.datapack("count", "sender")
        assert isinstance(count, wrappers_pb2.Int64Value) and count.value == 5
        history = sim.datapack("history", "receiver")
        assert isinstance(history, nrpgenericproto_pb2.ArrayString)
    entries = list(history.array)
    assert len(entries) >= 3
    first = int(entries[0].split("|")[0].removeprefix("Dump.String:step "))
    # The relay saw messages of their own types, and the 2 x 2 matrix
    # [[n, n + 1], [n + 2, n + 3]] came through with its shape: its trace is 2n + 3.
    assert entries == [
        f"Dump.String:step {n}|Wrappers.Int64Value:{n}|trace={2 * n + 3}"
        for n in range(first, first + len(entries))
    ]
    assert engine_processes(os.getpid()) == []


def test_an_engine_accepts_only_messages_of_its_protobuf_packages(tmp_path: Path) -> None:
    wire = codec.encode("text", "physics", dump_pb2.String(string_stream="abc"))
    assert codec.decode(wire, ("Dump",))[2].string_stream == "abc"
    with pytest.raises(ValueError, match=r"ProtobufPackages \(Wrappers\)\. Received: type='Dump"):
        codec.decode(wire, ("Wrappers",))
    with pytest.raises(ValueError, match=r"ProtobufPackages \(none\)"):
        codec.encode("text", "physics", dump_pb2.String(), ())

    # The receiver no longer lists Dump: the relay's Dump.String is refused by it.
    document = json.loads(CONFIG.read_text())
    for engine in document["EngineConfigs"]:
        engine["PythonFileName"] = str(CONFIG.parent / engine["PythonFileName"])
    document["EngineConfigs"][1]["ProtobufPackages"] = ["NrpGenericProto"]
    document["DataPackProcessingFunctions"][0]["FileName"] = str(CONFIG.parent / "relay.py")
    (tmp_path / "simulation_config.json").write_text(json.dumps(document))
    with Simulation.from_config(
        tmp_path / "simulation_config.json", echo_engine_output=False
    ) as sim:
        with pytest.raises(
            EngineError, match=r"\[receiver\].*ProtobufPackages \(NrpGenericProto\)"
        ):
            sim.run_until_timeout()
    assert engine_processes(os.getpid()) == []
