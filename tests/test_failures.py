"""Engines that die, hang or are interrupted: clear errors, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neuroloop.client import EngineClient
from neuroloop.errors import EngineCrashError, EngineTimeoutError
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, alive, engine_processes

COMMAND_TIMEOUT_S = 2.0


def exchange(*overrides: str) -> Simulation:
    return Simulation.from_config(
        FIXTURES / "exchange.json",
        (
            "SimulationTimeout=0",
            f"EngineConfigs.EngineName:slow.EngineCommandTimeout={COMMAND_TIMEOUT_S}",
            *overrides,
        ),
        echo_engine_output=False,
    )


def test_engine_killed_mid_run_is_reported_quickly_and_nothing_is_left() -> None:
    with exchange() as sim:
        sim.step(2)
        victim = sim.processes["slow"].pid
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(EngineCrashError, match=r"engine 'slow' was killed by signal 9"):
            sim.step(10)
        assert time.monotonic() - started < COMMAND_TIMEOUT_S
        pids = [p.pid for p in sim.processes.values()]
    assert not any(alive(pid) for pid in pids)
    assert engine_processes(os.getpid()) == []


def test_engine_exiting_names_its_status_and_stderr() -> None:
    with exchange("EngineConfigs.EngineName:fast.EngineExtraConfigs={ExitAtStep: 3}") as sim:
        with pytest.raises(EngineCrashError) as caught:
            sim.step(10)
    message = str(caught.value)
    assert "engine 'fast' exited with status 3" in message
    assert "exiting on purpose" in message
    assert engine_processes(os.getpid()) == []


def test_hung_engine_times_out_with_a_clear_error() -> None:
    with exchange("EngineConfigs.EngineName:slow.EngineExtraConfigs={HangAtStep: 2}") as sim:
        started = time.monotonic()
        with pytest.raises(EngineTimeoutError, match=r"\[slow\] step: no answer within 2 s"):
            sim.step(10)
        waited = time.monotonic() - started
    assert COMMAND_TIMEOUT_S <= waited < COMMAND_TIMEOUT_S + 2
    assert engine_processes(os.getpid()) == []


def test_configured_port_taken_falls_back_to_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with exchange(f"EngineConfigs.EngineName:fast.ServerAddress=127.0.0.1:{port}") as sim:
            sim.step(2)
            client = sim.clients["fast"]
            assert isinstance(client, EngineClient)
            address = client.address
    assert address.startswith("127.0.0.1:") and address != f"127.0.0.1:{port}"


def test_already_running_engine_over_a_unix_socket(tmp_path: os.PathLike[str]) -> None:
    address = f"unix:{tmp_path}/fast.sock"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuroloop",
            "engine",
            "--engine",
            f"{FIXTURES / 'clock_engine.py'}:ClockEngine",
            "--name",
            "fast",
            "--address",
            address,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("NEUROLOOP-ENGINE-READY name=fast")
        with exchange(
            "EngineConfigs.EngineName:fast.EngineLaunchCommand={LaunchType: EmptyLaunchCommand}",
            f"EngineConfigs.EngineName:fast.ServerAddress={address}",
        ) as sim:
            sim.step(4)
            assert sim.datapack("steps", "fast") == 4
            assert "fast" not in sim.processes
        # Closing the simulation shuts the external engine down through the Shutdown call.
        assert server.wait(10) == 0
    finally:
        server.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_neuroloop_run_stops_every_engine(signum: int) -> None:
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuroloop",
            "run",
            str(FIXTURES / "exchange.json"),
            "-o",
            "SimulationTimeout=100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stderr is not None
        line = run.stderr.readline()  # the first progress line: engines are up and stepping
        assert line.startswith("[neuroloop] t ="), line
        engines = engine_processes(run.pid)
        assert len(engines) == 2
        run.send_signal(signum)
        assert run.wait(30) == 128 + signum  # 130 for SIGINT, 143 for SIGTERM
        assert "interrupted; all engines stopped" in run.stderr.read()
        assert not any(alive(pid) for pid, _ in engines)
    finally:
        run.kill()


def _pids_with_argument(argument: str) -> list[int]:
    """Live processes with ``argument`` among their command-line arguments."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if argument in args and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


CLOCK = f"{FIXTURES / 'clock_engine.py'}:ClockEngine"

SLOW_TO_START = """
import time
time.sleep(3600)  # the engine never finishes importing, so it never serves
"""

BLOCKING_FUNCTION = """
import time
from neuroloop.functions import SimulationIteration, TransceiverFunction

@SimulationIteration("iteration")
@TransceiverFunction("clock")
def blocks(iteration):
    if iteration == 3:
        time.sleep(3600)
    return []
"""


def _run_one_engine(
    tmp_path: Path, engine: dict[str, Any], stderr: int = subprocess.DEVNULL, **sections: Any
) -> subprocess.Popen[str]:
    """``neuroloop run`` of a config with one python engine ``clock`` (``engine``'s keys added)
    and the top-level ``sections``; long timeouts, so only what the test does ends it."""
    config = {
        "SimulationName": "waits",
        "SimulationTimeout": 1000,
        "SimulationTimestep": 0.01,
        "EngineConfigs": [
            {"EngineName": "clock", "EngineType": "python", "EngineTimestep": 0.01,
             "EngineCommandTimeout": 600, "EngineLaunchTimeout": 600, **engine}
        ],
        **sections,
    }  # fmt: skip
    (tmp_path / "sim.json").write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "neuroloop", "run", str(tmp_path / "sim.json"), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def _kill_and_expect_gone(run: subprocess.Popen[str], pids: list[int], timeout_s: float) -> None:
    """SIGKILL the orchestrator ``run``; every one of ``pids`` must be gone in ``timeout_s``."""
    run.kill()
    run.wait(10)
    assert _wait_for(lambda: not any(alive(pid) for pid in pids), timeout_s), [
        pid for pid in pids if alive(pid)
    ]


def test_custom_commands_die_with_a_killed_orchestrator(tmp_path: Path) -> None:
    """An ExternalProcesses entry and an engine started by a custom EngineProcCmd, busy in a
    step that never ends, are gone within seconds of a SIGKILL of their orchestrator."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    marker = str(tmp_path / "sleeper")
    custom = {
        "EngineClass": CLOCK,
        "EngineProcCmd": sys.executable,
        "EngineProcStartParams": [
            "-m", "neuroloop", "engine", "--engine", CLOCK, "--name", "clock", "--address", address,
        ],
        "ServerAddress": address,
        "EngineExtraConfigs": {"HangAtStep": 3},
    }  # fmt: skip
    sleeper = {"Name": "sleeper", "ProcCmd": sys.executable,
               "ProcStartParams": ["-c", "import time; time.sleep(600)", marker]}  # fmt: skip
    run = _run_one_engine(tmp_path, custom, ExternalProcesses=[sleeper])
    try:
        assert _wait_for(lambda: bool(_pids_with_argument(marker)), 60)
        assert _wait_for(lambda: bool(_pids_with_argument(address)), 60)
        children = _pids_with_argument(marker) + _pids_with_argument(address)
        time.sleep(1.0)  # the engine is now stuck in its third step
        _kill_and_expect_gone(run, children, 5)
    finally:
        run.kill()
        for pid in _pids_with_argument(marker) + _pids_with_argument(address):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("where", ["a blocking function", "engine start-up"])
def test_sigterm_stops_a_run_that_waits(tmp_path: Path, where: str) -> None:
    """The first SIGTERM stops the run within the grace period even when the loop never gets
    back to check it: exit 143 and no engine left."""
    engine = {"EngineClass": CLOCK}
    if where == "engine start-up":
        (tmp_path / "slow_engine.py").write_text(SLOW_TO_START)
        engine = {"EngineClass": f"{tmp_path / 'slow_engine.py'}:Never"}
    (tmp_path / "blocking.py").write_text(BLOCKING_FUNCTION)
    functions = [{"Name": "blocking", "FileName": "blocking.py"}]
    run = _run_one_engine(tmp_path, engine, subprocess.PIPE, DataPackProcessingFunctions=functions)
    try:
        assert _wait_for(lambda: bool(engine_processes(run.pid)), 60)
        engines = engine_processes(run.pid)
        time.sleep(2.0)  # stuck in the function (or in the engine's import) by now
        started = time.monotonic()
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == 143
        assert time.monotonic() - started < 15
        assert run.stderr is not None and "interrupted" in run.stderr.read()
        assert _wait_for(lambda: not any(alive(pid) for pid, _ in engines), 10)
    finally:
        run.kill()


@pytest.mark.parametrize("stuck", ["in a step", "loading its engine"])
def test_a_stuck_neuroloop_engine_dies_with_a_killed_orchestrator(
    tmp_path: Path, stuck: str
) -> None:
    """Stuck in a step, an engine's shutdown waits for the step's lock; stuck loading (a
    hanging import), it is not serving yet. Either way it leaves once its orchestrator dies."""
    engine: dict[str, Any] = {"EngineClass": CLOCK, "EngineExtraConfigs": {"HangAtStep": 3}}
    if stuck == "loading its engine":
        (tmp_path / "slow_engine.py").write_text(SLOW_TO_START)
        engine = {"EngineClass": f"{tmp_path / 'slow_engine.py'}:Never"}
    run = _run_one_engine(tmp_path, engine)
    engines: list[int] = []
    try:
        assert _wait_for(lambda: bool(engine_processes(run.pid)), 60)
        engines = [pid for pid, _ in engine_processes(run.pid)]
        time.sleep(1.0)  # stuck in its third step, or in its import
        _kill_and_expect_gone(run, engines, 15)
    finally:
        run.kill()
        for pid in engines:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
