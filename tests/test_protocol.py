"""The wire contract: generated code in sync with its .proto files, and the datapack codec."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuroloop.protocol import codec
from neuroloop.protocol import engine_pb2 as pb
from neuroloop.protocol.generate import GENERATED_NAMES, MESSAGES_DIR, PROTOCOL_DIR

ROOT = Path(__file__).resolve().parents[1]


def over_the_wire(value: Any) -> Any:
    """Encode, serialise, parse and decode ``value`` as a datapack; check its id survives."""
    wire = codec.encode("sensor", "physics", value).SerializeToString()
    name, engine, decoded = codec.decode(pb.DataPack.FromString(wire))
    assert (name, engine) == ("sensor", "physics")
    return decoded


def tensor_message(dtype: str, shape: tuple[int, ...], data: bytes) -> pb.DataPack:
    message = pb.DataPack(id=pb.DataPackId(name="sensor", engine="physics"))
    message.tensor.dtype = dtype
    message.tensor.shape.extend(shape)
    message.tensor.data = data
    return message


def test_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    # In a process of its own: protoc's extension crashes in a process that has loaded
    # TensorFlow's copy of protobuf (as the full test session has).
    run = subprocess.run(
        [sys.executable, "-m", "neuroloop.protocol.generate", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    out = tmp_path / PROTOCOL_DIR.relative_to(ROOT)
    assert sorted(path.name for path in out.iterdir()) == sorted(GENERATED_NAMES)
    for name in GENERATED_NAMES:
        committed = PROTOCOL_DIR / name
        assert (out / name).read_bytes() == committed.read_bytes(), (
            f"{committed} is stale: run python -m neuroloop.protocol.generate"
        )
    # NRP-core's message packages (nrp_protobuf): message code for every .proto file.
    messages = sorted((tmp_path / MESSAGES_DIR.relative_to(ROOT)).iterdir())
    expected = [f"{p.stem}_pb2{s}" for p in MESSAGES_DIR.glob("*.proto") for s in (".py", ".pyi")]
    assert [path.name for path in messages] == sorted(expected)
    for path in messages:
        assert path.read_bytes() == (MESSAGES_DIR / path.name).read_bytes(), f"{path.name} is stale"


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "int8", "int32", "int64", "uint8", "bool", "complex64"]
)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (2, 3, 4)])
def test_tensors_round_trip_with_dtype_shape_and_values(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    array = (rng.normal(size=shape) * 50).astype(dtype)
    if dtype == "complex64":
        array = array + 1j * np.arange(array.size, dtype=np.float32).reshape(shape)
    decoded = over_the_wire(array)
    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == shape
    np.testing.assert_array_equal(decoded, array)
    assert decoded.flags.writeable


def test_numpy_scalars_travel_as_zero_dimensional_tensors() -> None:
    decoded = over_the_wire(np.float32(2.5))
    assert decoded.shape == () and decoded.dtype == np.float32 and decoded == 2.5
    assert over_the_wire(np.bool_(True)).dtype == np.bool_


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4", ">i8", ">c8"])
def test_big_endian_arrays_arrive_little_endian_with_equal_values(dtype: str) -> None:
    array = np.array([[1.5, -2.0, 3.0], [4.0, 1e6, -7.0]]).astype(dtype)
    message = codec.encode("sensor", "physics", array)
    assert message.tensor.dtype == array.dtype.newbyteorder("<").str
    assert message.tensor.data == array.astype(message.tensor.dtype).tobytes()
    decoded = over_the_wire(array)
    assert decoded.dtype.str == "<" + dtype[1:]
    np.testing.assert_array_equal(decoded, array)


def test_a_big_endian_tensor_from_another_sender_is_decoded_little_endian() -> None:
    values = np.array([1, -2, 300], dtype=">i4")
    _, _, decoded = codec.decode(tensor_message(">i4", (3,), values.tobytes()))
    assert decoded.dtype.str == "<i4"
    assert decoded.tolist() == [1, -2, 300]


@pytest.mark.parametrize(
    "value",
    [
        {"torque": 1.5, "names": ["a", "b"], "nested": {"ok": True, "n": None}},
        [1, 2.5, "three", False],
        "text",
        42,
        -0.125,
        True,
        {},
        [],
    ],
)
def test_json_values_round_trip(value: Any) -> None:
    decoded = over_the_wire(value)
    assert decoded == value and type(decoded) is type(value)


def test_an_empty_datapack_decodes_to_none() -> None:
    message = pb.DataPack(id=pb.DataPackId(name="sensor", engine="physics"))
    assert codec.decode(message) == ("sensor", "physics", None)


def test_tensor_bytes_that_do_not_match_the_shape_are_a_clear_error() -> None:
    message = tensor_message("<f4", (2, 3), b"\0" * 20)
    with pytest.raises(ValueError) as caught:
        codec.decode(message)
    assert str(caught.value) == (
        "[physics] datapack 'sensor': shape (2, 3) of dtype <f4 needs 24 bytes. Received: 20 bytes"
    )
    with pytest.raises(ValueError, match=r"expected sizes >= 0 in the shape\. Received"):
        codec.decode(tensor_message("<f4", (-1, -4), b"\0" * 16))


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("|O", "expected a numeric dtype. Received: dtype='|O'"),
        ("<U4", "expected a numeric dtype. Received: dtype='<U4'"),
        ("<M8[ns]", "expected a numeric dtype. Received: dtype='<M8[ns]'"),
        ("f4,i4", "expected a numeric dtype. Received: dtype='f4,i4'"),
        ("float99", "unknown dtype. Received: dtype='float99'"),
        ("(2,", "unknown dtype. Received: dtype='(2,'"),
    ],
)
def test_unknown_or_object_dtypes_on_the_wire_are_a_clear_error(dtype: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        codec.decode(tensor_message(dtype, (1,), b"\0" * 8))
    assert str(caught.value) == f"[physics] datapack 'sensor': {expected}"


@pytest.mark.parametrize(
    ("value", "received"),
    [
        (np.array(["a", "b"]), "dtype=<U1"),
        (np.array([object()], dtype=object), "dtype=object"),
        (np.str_("text"), "dtype=<U4"),
    ],
)
def test_arrays_that_are_not_numeric_are_refused_when_sent(value: Any, received: str) -> None:
    with pytest.raises(ValueError) as caught:
        codec.encode("sensor", "physics", value)
    assert str(caught.value) == (
        f"[physics] datapack 'sensor': expected a numeric or boolean array. Received: {received}"
    )


@pytest.mark.parametrize(
    "value", [float("nan"), {"torque": float("inf")}, [1.0, -float("inf")], {"x": np.int64(3)}]
)
def test_values_that_are_not_strict_json_are_refused_when_sent(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^\[physics\] datapack 'sensor': expected a numpy array"):
        codec.encode("sensor", "physics", value)


@pytest.mark.parametrize(
    ("text", "received"),
    [("NaN", "NaN"), ('{"torque": Infinity}', "Infinity"), ("[-Infinity]", "-Infinity")],
)
def test_nan_and_infinity_in_received_json_are_refused(text: str, received: str) -> None:
    message = pb.DataPack(id=pb.DataPackId(name="sensor", engine="physics"), json=text)
    with pytest.raises(ValueError) as caught:
        codec.decode(message)
    assert str(caught.value) == (
        f"[physics] datapack 'sensor': expected JSON with finite numbers. Received: {received}"
    )


def test_malformed_json_is_a_clear_error() -> None:
    message = pb.DataPack(id=pb.DataPackId(name="sensor", engine="physics"), json="{torque: 1}")
    with pytest.raises(ValueError, match=r"^\[physics\] datapack 'sensor': expected a JSON doc"):
        codec.decode(message)


PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}


def test_nothing_in_the_core_uses_pickle() -> None:
    """Nothing unpickles data: no pickle-like imports, no ``allow_pickle=True``."""
    offenders = []
    files = sorted((ROOT / "neuroloop").rglob("*.py")) + sorted((ROOT / "nrp_core").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                refused = isinstance(node.value, ast.Constant) and node.value.value is False
                names = set() if refused else {"allow_pickle"}
            else:
                continue
            if names & (PICKLE_MODULES | {"allow_pickle"}):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
