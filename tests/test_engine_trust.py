"""Engines obey only their orchestrator: the per-simulation secret, over real gRPC to real
engine processes; binding beyond loopback needs a secret; a step's timestep is bounded."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from neuroloop.client import EngineClient
from neuroloop.errors import ConfigError, EngineError
from neuroloop.protocol import codec
from neuroloop.protocol import engine_pb2 as pb
from neuroloop.protocol import engine_pb2_grpc as pb_grpc
from neuroloop.secret import METADATA_KEY, SECRET_ENV, new_secret
from neuroloop.server import MAX_CONCURRENT_CALLS, SERVER_THREADS
from neuroloop.simulation import Simulation
from tests.processes import FIXTURES, engine_processes, run_neuroloop

TIMEOUT_S = 10.0
MS = 1_000_000
CLOCK_ENGINE = f"{FIXTURES / 'clock_engine.py'}:ClockEngine"
HUGE_TIMESTEP_NS = 10**18
"""About 31.7 years of simulated time in one step."""

Reply = TypeVar("Reply")


def exchange(*overrides: str) -> Simulation:
    """tests/fixtures/exchange.json: two clock engines, 0.06 s of simulated time."""
    return Simulation.from_config(FIXTURES / "exchange.json", overrides, echo_engine_output=False)


def foreign_calls(stub: pb_grpc.EngineStub) -> dict[str, Callable[..., object]]:
    """Every Engine RPC, as a call that takes the metadata to send."""

    def stream(metadata: tuple[tuple[str, str], ...] | None) -> object:
        request = pb.StepRequest(timestep_ns=10 * MS)
        return list(stub.StepStream(iter([request]), timeout=TIMEOUT_S, metadata=metadata))

    requests: dict[str, tuple[Callable[..., object], object]] = {
        "Initialize": (stub.Initialize, pb.InitializeRequest(config_json="{}")),
        "Reset": (stub.Reset, pb.ResetRequest(seed=1)),
        "Step": (stub.Step, pb.StepRequest(timestep_ns=10 * MS)),
        "GetDataPacks": (stub.GetDataPacks, pb.GetDataPacksRequest(names=["steps"])),
        "SetDataPacks": (stub.SetDataPacks, pb.SetDataPacksRequest()),
        "Shutdown": (stub.Shutdown, pb.ShutdownRequest()),
    }
    calls: dict[str, Callable[..., object]] = {
        name: (
            lambda metadata, method=method, request=request: method(
                request, timeout=TIMEOUT_S, metadata=metadata
            )
        )
        for name, (method, request) in requests.items()
    }
    calls["StepStream"] = stream
    return calls


def test_a_client_without_the_secret_is_refused_while_the_simulation_runs_on() -> None:
    with exchange() as sim:
        sim.step(2)
        for name, process in sim.processes.items():
            # The secret travels in the environment, never on the command line.
            cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
            assert sim.secret.encode() not in cmdline
            assert SECRET_ENV not in os.environ
            client = sim.clients[name]
            assert isinstance(client, EngineClient)
            with grpc.insecure_channel(client.address) as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                calls = foreign_calls(pb_grpc.EngineStub(channel))
                for verb, call in calls.items():
                    for metadata, what in (
                        (None, "no engine secret"),
                        (((METADATA_KEY, new_secret()),), "a wrong engine secret"),
                    ):
                        with pytest.raises(grpc.RpcError) as refused:
                            call(metadata)
                        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, verb
                        assert refused.value.details().startswith(
                            f"[{name}] {verb}: refused: the call carries {what}"
                        )
        sim.run_until_timeout()
        steps = (int(sim.datapack("steps", "fast")), int(sim.datapack("steps", "slow")))
        # The owner may initialize its engine again: only strangers are refused.
        fast = sim.clients["fast"]
        assert fast.initialize(sim.config.engines[0].section) == sim.datapack_names["fast"]
    # exchange.json: 0.06 s of 0.01 s steps for "fast", 0.02 s steps for "slow", as if no
    # stranger had called.
    assert steps == (6, 3)
    assert engine_processes(os.getpid()) == []


def test_a_step_asking_for_too_much_simulated_time_is_refused_naming_both_numbers() -> None:
    with exchange() as sim:
        sim.step(1)
        client = sim.clients["fast"]
        assert isinstance(client, EngineClient)
        with pytest.raises(EngineError) as caught:
            client.step({}, HUGE_TIMESTEP_NS, [])
        assert str(caught.value) == (
            "[fast] step: ValueError: expected a timestep <= 60000000000 ns (--max-timestep). "
            f"Received: timestep_ns={HUGE_TIMESTEP_NS}"
        )
        with grpc.insecure_channel(client.address) as channel, pytest.raises(grpc.RpcError) as rpc:
            pb_grpc.EngineStub(channel).Step(
                pb.StepRequest(timestep_ns=HUGE_TIMESTEP_NS),
                timeout=TIMEOUT_S,
                metadata=((METADATA_KEY, sim.secret),),
            )
        assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # The engine is unharmed: the loop goes on to the end.
        sim.run_until_timeout()
        assert sim.datapack("steps", "fast") == 6


def engine_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "neuroloop", "engine", "--engine", CLOCK_ENGINE, *arguments]


def test_binding_beyond_loopback_without_a_secret_needs_insecure() -> None:
    refused = run_neuroloop(
        "engine", "--engine", CLOCK_ENGINE, "--name", "open", "--address", "0.0.0.0:0", timeout=60
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "neuroloop engine: error: refusing to serve 0.0.0.0:0 without a secret: any client "
        "that reaches it could drive the engine; give --secret-file PATH, or --insecure"
    ]
    insecure = subprocess.Popen(
        engine_command("--name", "open", "--address", "0.0.0.0:0", "--insecure"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert insecure.stdout is not None and insecure.stderr is not None
        assert insecure.stdout.readline().startswith("NEUROLOOP-ENGINE-READY name=open")
        warning = insecure.stderr.readline()
        assert warning.startswith("[open] WARNING: no engine secret")
        assert "UNAUTHENTICATED and obeys any client" in warning
    finally:
        insecure.terminate()
        insecure.wait(30)


def test_an_engine_started_with_a_secret_file_obeys_only_configs_naming_it(
    tmp_path: Path,
) -> None:
    address = f"unix:{tmp_path}/fast.sock"
    secret_file = tmp_path / "fast.secret"
    secret_file.write_text(new_secret() + "\n")
    other_file = tmp_path / "other.secret"
    other_file.write_text(new_secret())
    server = subprocess.Popen(
        engine_command("--name", "fast", "--address", address, "--secret-file", str(secret_file)),
        stdout=subprocess.PIPE,
        text=True,
    )
    connect = (
        "EngineConfigs.EngineName:fast.EngineLaunchCommand={LaunchType: EmptyLaunchCommand}",
        f"EngineConfigs.EngineName:fast.ServerAddress={address}",
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("NEUROLOOP-ENGINE-READY name=fast")
        for secret_override, refusal in (
            ((), "no engine secret"),
            ((f"EngineConfigs.EngineName:fast.EngineSecretFile={other_file}",), "a wrong"),
        ):
            with pytest.raises(EngineError, match=rf"^\[fast\] Initialize: refused: .*{refusal}"):
                with exchange(*connect, *secret_override):
                    pass
        missing = tmp_path / "missing.secret"
        with pytest.raises(ConfigError, match=r"EngineSecretFile: expected a readable file"):
            with exchange(*connect, f"EngineConfigs.EngineName:fast.EngineSecretFile={missing}"):
                pass
        assert server.poll() is None, "a refused orchestrator's Shutdown stopped the engine"
        named = f"EngineConfigs.EngineName:fast.EngineSecretFile={secret_file}"
        with exchange(*connect, named) as sim:
            sim.step(4)
            assert sim.datapack("steps", "fast") == 4
        # The orchestrator holding the secret shut the engine down.
        assert server.wait(10) == 0
    finally:
        server.kill()
        server.wait()


def test_strangers_opening_many_streams_cannot_starve_the_orchestrator() -> None:
    """A refused call holds no server thread: the orchestrator's steps and health go on."""
    with exchange() as sim:
        sim.step(1)
        client = sim.clients["fast"]
        assert isinstance(client, EngineClient)
        with grpc.insecure_channel(client.address) as channel:
            stub = pb_grpc.EngineStub(channel)
            never_ending = threading.Event()

            def requests() -> Iterator[pb.StepRequest]:
                yield pb.StepRequest(timestep_ns=10 * MS)
                never_ending.wait()

            streams: list[Any] = [
                stub.StepStream(requests(), timeout=TIMEOUT_S) for _ in range(3 * SERVER_THREADS)
            ]
            try:
                # Health's Watch holds a thread per open watch: it needs the secret too.
                watch = health_pb2_grpc.HealthStub(channel).Watch
                streams += [
                    watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)
                    for _ in range(3 * SERVER_THREADS)
                ]
                for stream in streams:
                    with pytest.raises(grpc.RpcError) as refused:
                        next(stream)
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                health = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING
                sim.run_until_timeout()
                assert sim.datapack("steps", "fast") == 6
            finally:
                never_ending.set()
                for stream in streams:
                    stream.cancel()


def test_neuroloop_engine_secret_from_environment_or_file_and_its_max_timestep(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.secret"
    unreadable = run_neuroloop(
        "engine",
        "--engine",
        CLOCK_ENGINE,
        "--name",
        "fast",
        "--secret-file",
        str(missing),
        timeout=60,
    )
    assert unreadable.returncode == 2
    assert unreadable.stderr.splitlines() == [
        "neuroloop engine: error: --secret-file: expected a file holding the engine secret. "
        f"Received: {str(missing)!r} cannot be read (No such file or directory)"
    ]
    secret = new_secret()
    server = subprocess.Popen(
        engine_command("--name", "fast", "--address", "0.0.0.0:0", "--max-timestep", "0.5"),
        env={**os.environ, SECRET_ENV: secret},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("NEUROLOOP-ENGINE-READY name=fast")
        port = ready.strip().rpartition(":")[2]
        owner = EngineClient("fast", f"127.0.0.1:{port}", TIMEOUT_S, secret)
        stranger = EngineClient("fast", f"127.0.0.1:{port}", TIMEOUT_S)
        try:
            assert "steps" in owner.initialize({})
            with pytest.raises(EngineError) as too_long:
                owner.step({}, 500_000_001, [])
            assert str(too_long.value) == (
                "[fast] step: ValueError: expected a timestep <= 500000000 ns (--max-timestep). "
                "Received: timestep_ns=500000001"
            )
            with pytest.raises(EngineError, match=r"^\[fast\] Reset: refused: .*no engine secret"):
                stranger.reset(0)
            owner.shutdown()
        finally:
            owner.close()
            stranger.close()
        assert server.wait(10) == 0
    finally:
        server.kill()
        server.wait()


def serving_engine(*arguments: str) -> subprocess.Popen[str]:
    """A clock engine served by ``neuroloop engine`` with ``arguments``, once it is ready."""
    server = subprocess.Popen(
        engine_command("--name", "fast", *arguments),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().startswith("NEUROLOOP-ENGINE-READY name=fast")
    return server


def health_status(channel: grpc.Channel) -> str:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=1.0
    )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def until_served(call: Callable[[], Reply]) -> Reply:
    """``call``'s reply, retried while the engine refuses it for lack of a free slot."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def test_idle_streams_of_an_unauthenticated_engine_cannot_exhaust_its_threads(
    tmp_path: Path,
) -> None:
    """Without a secret nobody can be refused for who they are: the bound on calls served at
    once keeps threads free, so health answers and extra calls are refused, not queued."""
    address = f"unix:{tmp_path}/open.sock"
    server = serving_engine("--address", address)
    never_ending = threading.Event()

    def requests() -> Iterator[pb.StepRequest]:
        yield pb.StepRequest(timestep_ns=10 * MS)
        never_ending.wait()

    streams: list[Any] = []
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.EngineStub(channel)
            stub.Initialize(pb.InitializeRequest(config_json="{}"), timeout=TIMEOUT_S)
            for _ in range(MAX_CONCURRENT_CALLS):
                streams.append(stub.StepStream(requests(), timeout=3 * TIMEOUT_S))
                next(streams[-1])  # its first reply: this stream holds a slot
            # Every slot held by an idle stream: more calls are refused at once, not queued.
            extra = [stub.StepStream(requests(), timeout=TIMEOUT_S) for _ in range(4)]
            for stream in extra:
                with pytest.raises(grpc.RpcError) as refused:
                    next(stream)
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert refused.value.details() == (
                    f"[fast] StepStream: refused: this engine already serves "
                    f"{MAX_CONCURRENT_CALLS} calls at once (the most it serves)"
                )
            with pytest.raises(grpc.RpcError) as unary:
                stub.GetDataPacks(pb.GetDataPacksRequest(names=["steps"]), timeout=TIMEOUT_S)
            assert unary.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            for _ in range(3 * SERVER_THREADS):
                assert health_status(channel) == "SERVING"
            # Dropped streams give every slot back: as many streams can hold them again.
            for stream in streams:
                stream.cancel()
            served_again = until_served(
                lambda: stub.GetDataPacks(pb.GetDataPacksRequest(names=["steps"]), timeout=1.0)
            )
            assert codec.decode(served_again.datapacks[0])[2] == MAX_CONCURRENT_CALLS
            streams = [stub.StepStream(requests(), timeout=TIMEOUT_S) for _ in streams]
            for stream in streams:
                next(stream)
            for stream in streams:
                stream.cancel()
            until_served(lambda: stub.Shutdown(pb.ShutdownRequest(), timeout=TIMEOUT_S))
        assert server.wait(10) == 0
    finally:
        never_ending.set()
        for stream in streams:
            stream.cancel()
        server.kill()
        server.wait()


def test_health_reports_not_serving_while_a_step_is_stuck(tmp_path: Path) -> None:
    address = f"unix:{tmp_path}/slow.sock"
    server = serving_engine("--address", address, "--stuck-after", "0.5")
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.EngineStub(channel)
            slow_step = json.dumps({"EngineExtraConfigs": {"HangAtStep": 1, "HangSeconds": 3}})
            stub.Initialize(pb.InitializeRequest(config_json=slow_step), timeout=TIMEOUT_S)
            assert health_status(channel) == "SERVING"
            step = stub.Step.future(pb.StepRequest(timestep_ns=10 * MS), timeout=TIMEOUT_S)
            seen = [health_status(channel)]
            deadline = time.monotonic() + TIMEOUT_S
            while not (step.done() and seen[-1] == "SERVING") and time.monotonic() < deadline:
                if seen[-1] != (status := health_status(channel)):
                    seen.append(status)
                time.sleep(0.05)
            assert step.result().time_ns == 10 * MS
            # Fine at first, NOT_SERVING once the step has taken more than 0.5 s, and
            # SERVING again when it is over.
            assert seen == ["SERVING", "NOT_SERVING", "SERVING"]
            stub.Shutdown(pb.ShutdownRequest(), timeout=TIMEOUT_S)
        assert server.wait(10) == 0
        assert server.stderr is not None
        assert server.stderr.read().splitlines()[-2:] == [
            "[fast] step has held the engine for more than 0.5 s (--stuck-after): "
            "health reports NOT_SERVING",
            "[fast] the stuck call ended: health reports SERVING",
        ]
    finally:
        server.kill()
        server.wait()


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open."""
    links = (os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}


def listening(table: str) -> dict[str, str]:
    """Listening sockets of ``/proc/net/TABLE`` (unix, tcp, tcp6) by inode: path or address."""
    rows = [line.split() for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]]
    if table == "unix":  # Num RefCount Protocol Flags Type St Inode [Path]; St 01: listening
        return {row[6]: row[7] for row in rows if len(row) > 7 and row[5] == "01"}
    return {row[9]: row[1] for row in rows if row[3] == "0A"}  # st 0A: TCP_LISTEN


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_engines_a_simulation_starts_listen_on_unix_sockets_in_a_private_directory() -> None:
    with exchange() as sim:
        directory = sim.socket_directory
        assert directory is not None
        info = directory.stat()
        assert (oct(stat.S_IMODE(info.st_mode)), info.st_uid) == (oct(0o700), os.getuid())
        for name, process in sim.processes.items():
            client = sim.clients[name]
            assert isinstance(client, EngineClient)
            path = directory / f"{name}.sock"
            assert client.address == f"unix:{path}"
            assert stat.S_ISSOCK(path.stat().st_mode)
            held = socket_inodes(process.pid)
            assert [listening("unix")[inode] for inode in held & set(listening("unix"))] == [
                str(path)
            ]
            assert not held & {*listening("tcp"), *listening("tcp6")}, "an engine listens on tcp"
        sim.run_until_timeout()
        steps = (int(sim.datapack("steps", "fast")), int(sim.datapack("steps", "slow")))
    assert steps == (6, 3)
    assert not directory.exists()


def test_an_engine_given_a_tcp_server_address_still_serves_on_tcp() -> None:
    with exchange("EngineConfigs.EngineName:slow.ServerAddress=127.0.0.1:0") as sim:
        clients = sim.clients.values()
        addresses = {c.name: c.address for c in clients if isinstance(c, EngineClient)}
        sim.run_until_timeout()
        assert sim.datapack("steps", "slow") == 3
    assert addresses["fast"].startswith("unix:")
    assert addresses["slow"].startswith("127.0.0.1:") and addresses["slow"] != "127.0.0.1:0"
