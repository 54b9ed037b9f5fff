"""The engine server over real gRPC: error reporting, datapack names, time checks, loading."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from neuroloop.client import EngineClient
from neuroloop.engine import Engine, load_engine_class
from neuroloop.errors import EngineError
from neuroloop.launcher import Launcher
from neuroloop.plugins.engines.gymnasium_engine import GymnasiumEngine
from neuroloop.protocol import codec
from neuroloop.protocol import engine_pb2 as pb
from neuroloop.protocol import engine_pb2_grpc as pb_grpc
from tests.fixtures.clock_engine import ClockEngine
from tests.processes import FIXTURES

MS = 1_000_000
TIMEOUT_S = 10.0
FAULTY_ENGINE = FIXTURES / "faulty_engine.py"


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """One real `neuroloop engine` process serving FaultyEngine for the whole module."""
    command = [
        sys.executable,
        "-m",
        "neuroloop",
        "engine",
        "--engine",
        str(FAULTY_ENGINE),
        "--name",
        "faulty",
        "--parent-pid",
        str(os.getpid()),
    ]
    with Launcher(echo_stdout=False) as launcher:
        process = launcher.start("faulty", command)
        yield launcher.wait_announced(process, TIMEOUT_S)


@pytest.fixture
def client(address: str) -> Iterator[EngineClient]:
    """A client of the faulty engine, freshly initialized (engine time 0, count 0)."""
    engine = EngineClient("faulty", address, TIMEOUT_S)
    engine.wait_ready(TIMEOUT_S)
    assert engine.initialize({}) == ["count", "fault"]
    yield engine
    engine.close()


def test_value_error_in_step_names_engine_and_call_and_the_server_keeps_serving(
    client: EngineClient,
) -> None:
    assert client.step({}, 10 * MS, ["count"])["count"] == 1
    with pytest.raises(EngineError) as caught:
        client.step({"fault": "value"}, 10 * MS, ["count"])
    assert str(caught.value).startswith("[faulty] step: ValueError: asked to fail at step 2")
    # The failed step did not advance the engine; the next one does.
    assert client.step({}, 10 * MS, ["count"])["count"] == 2
    assert client.time_ns == 20 * MS


def test_other_exceptions_are_internal_errors_naming_the_engine(
    client: EngineClient, address: str
) -> None:
    with pytest.raises(EngineError) as caught:
        client.step({"fault": "runtime"}, 10 * MS, [])
    assert str(caught.value).startswith("[faulty] step: RuntimeError: asked to fail at step 1")

    # On the wire: user errors are INVALID_ARGUMENT, anything else INTERNAL.
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.EngineStub(channel)
        for fault, code in (
            ("value", grpc.StatusCode.INVALID_ARGUMENT),
            ("runtime", grpc.StatusCode.INTERNAL),
        ):
            request = pb.StepRequest(
                set=[codec.encode("fault", "faulty", fault)], timestep_ns=10 * MS
            )
            with pytest.raises(grpc.RpcError) as rpc_error:
                stub.Step(request, timeout=TIMEOUT_S)
            assert rpc_error.value.code() == code
            assert rpc_error.value.details().startswith("[faulty] step: ")
    assert client.get_datapacks(["count"])["count"] == 0


def test_unknown_datapack_names_are_rejected_with_the_names_on_offer(
    client: EngineClient,
) -> None:
    with pytest.raises(EngineError) as caught:
        client.get_datapacks(["cuont"])
    assert str(caught.value) == (
        "[faulty] get: expected one of this engine's datapacks (count, fault). Received: 'cuont'"
    )
    with pytest.raises(EngineError, match=r"^\[faulty\] set: expected one of .*'speed'"):
        client.set_datapacks({"speed": 1.0})
    with pytest.raises(EngineError, match=r"^\[faulty\] step: expected a timestep >= 0 ns"):
        client.step({}, -1, [])


def test_a_bad_tensor_sent_to_the_server_is_a_clear_error(client: EngineClient) -> None:
    message = codec.encode("fault", "faulty", "value")
    message.tensor.dtype = "<f8"
    message.tensor.shape.append(2)
    message.tensor.data = b"\0" * 8
    with grpc.insecure_channel(client.address) as channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.EngineStub(channel).SetDataPacks(
            pb.SetDataPacksRequest(datapacks=[message]), timeout=TIMEOUT_S
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        "[faulty] datapack 'fault': shape (2,) of dtype <f8 needs 16 bytes. Received: 8 bytes"
    )


def test_engine_time_going_backwards_is_rejected(client: EngineClient) -> None:
    # Two orchestrators sharing one engine: the second one's reset rewinds the engine's
    # clock under the first one's feet.
    for _ in range(3):
        client.step({}, 10 * MS, [])
    assert client.time_ns == 30 * MS
    other = EngineClient("faulty", client.address, TIMEOUT_S)
    try:
        assert other.reset(seed=1) == 0
    finally:
        other.close()
    with pytest.raises(EngineError) as caught:
        client.step({}, 10 * MS, [])
    assert str(caught.value) == (
        "[faulty] step: engine time went backwards: expected at least 30000000 ns. "
        "Received: time_ns=10000000"
    )


def test_load_engine_class_by_module_file_and_bare_file() -> None:
    assert (
        load_engine_class("neuroloop.plugins.engines.gymnasium_engine:GymnasiumEngine")
        is GymnasiumEngine
    )
    assert load_engine_class("tests.fixtures.clock_engine:ClockEngine") is ClockEngine
    by_file = load_engine_class(f"{FIXTURES / 'clock_engine.py'}:ClockEngine")
    assert by_file.__name__ == "ClockEngine" and issubclass(by_file, Engine)
    single = load_engine_class(str(FAULTY_ENGINE))
    assert single.__name__ == "FaultyEngine" and issubclass(single, Engine)
    assert single("x").name == "x"


ENGINE_HEADER = """
from neuroloop.engine import Engine
from tests.fixtures.clock_engine import ClockEngine


class Base(Engine):  # abstract: not counted
    pass
"""


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ("class NotAnEngine:\n    pass\n", "[]"),
        (
            "class One(ClockEngine):\n    pass\n\n\nclass Two(ClockEngine):\n    pass\n",
            "['One', 'Two']",
        ),
    ],
    ids=["zero", "two"],
)
def test_a_bare_file_needs_exactly_one_engine_subclass(
    tmp_path: Path, body: str, found: str
) -> None:
    path = tmp_path / "engines_here.py"
    path.write_text(ENGINE_HEADER + "\n\n" + body)
    with pytest.raises(ValueError) as caught:
        load_engine_class(str(path))
    assert str(caught.value) == (
        f"engine {str(path)!r}: expected exactly one Engine subclass in the file; name one "
        f"with FILE.py:Class. Received: {found}"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("numpy:ndarray", "expected a subclass of neuroloop.engine.Engine. Received: <class"),
        ("tests.processes:FIXTURES", "expected a subclass of neuroloop.engine.Engine"),
        (
            "neuroloop.plugins.engines.gymnasium_engine:Nope",
            "expected neuroloop.plugins.engines.gymnasium_engine to define Nope",
        ),
        ("neuroloop.engine:Engine", "does not implement datapack_names, get_datapack"),
        ("nonexistent.module:X", "expected an importable module. Received: No module named"),
        ("/nonexistent/engine.py:X", "expected an existing .py file"),
    ],
)
def test_load_engine_class_rejects_what_is_not_a_usable_engine(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_engine_class(spec)
