"""NRP-core's engine script API and server semantics, hosted by ScriptEngine in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration

from neuroloop.datapack import DataPackIdentifier
from neuroloop.functions import DataPackStore, EngineDataPack, PreprocessedDataPack
from neuroloop.script_engine import GrpcEngineScript, ScriptEngine

MS = 1_000_000

SCRIPT = """
from nrp_core.engines.python_json import EngineScript
from nrp_core.engines.python_grpc import GrpcEngineScript


class Script({base}):
    def initialize(self):
        self.seen = []
        self._registerDataPack("seen")
        self._setDataPack("seen", self.seen)
        {register}

    def runLoop(self, timestep_ns):
        self.seen.append([self._getEngineName(), self._time_ns, timestep_ns])

    def reset(self):
        self.seen.append(["reset at", self._time_ns])
"""


def engine(tmp_path: Path, base: str = "EngineScript", register: str = "") -> ScriptEngine:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(base=base, register=register))
    hosted = ScriptEngine("python_1")
    hosted.initialize({"PythonFileName": str(script), "dumps": 3})
    return hosted


def test_time_is_advanced_before_run_loop(tmp_path: Path) -> None:
    # NRP-core's server run_loop: script._advanceTime(dt), then script.runLoop(dt).
    hosted = engine(tmp_path)
    hosted.step(10 * MS)
    hosted.step(20 * MS)
    assert hosted.get_datapack("seen") == [
        ["python_1", 10 * MS, 10 * MS],
        ["python_1", 30 * MS, 20 * MS],
    ]
    # reset: the script's reset() runs first, then the time is set back to 0.
    hosted.reset(seed=None)
    assert hosted.get_datapack("seen")[-1] == ["reset at", 30 * MS]
    assert hosted.script._time_ns == 0


def test_script_api_names_config_and_registration(tmp_path: Path) -> None:
    hosted = engine(tmp_path, register='self._registerDataPack("action")')
    script = hosted.script
    assert script._name == script._getEngineName() == "python_1"
    assert script._config["dumps"] == 3  # custom keys reach the script
    assert script._getRegisteredDataPackNames() == ["seen", "action"]
    assert script._getDataPack("action") is None
    with pytest.raises(ValueError, match="'seen' is already registered"):
        script._registerDataPack("seen")
    script._advanceTime(5)
    assert script._time_ns == 5


def test_grpc_scripts_register_an_empty_message_of_the_given_type(tmp_path: Path) -> None:
    register = 'import google.protobuf.duration_pb2 as d; self._registerDataPack("d", d.Duration)'
    hosted = engine(tmp_path, base="GrpcEngineScript", register=register)
    script = hosted.script
    assert isinstance(script, GrpcEngineScript)
    message = script._getDataPack("d")
    assert type(message) is Duration and message == Duration()
    with pytest.raises(TypeError, match="expected a message class"):
        script._registerDataPack("e", Duration())  # type: ignore[arg-type]


def test_is_preprocessed_reads_from_the_preprocessed_pool() -> None:
    identifier = DataPackIdentifier("obs", "env")
    store = DataPackStore()
    store.update("env", {"obs": 1})
    from_engine = EngineDataPack("x", identifier).input
    preprocessed = EngineDataPack("x", identifier, isPreprocessed=True).input
    assert not from_engine.preprocessed and preprocessed.preprocessed
    assert PreprocessedDataPack("x", identifier).input == preprocessed
    assert store.lookup(from_engine).data == 1
    assert store.lookup(preprocessed).data is None  # no preprocessing function produced it
