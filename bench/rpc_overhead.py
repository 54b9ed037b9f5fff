"""RPC overhead of one loop step over one engine that does no work, against bare grpcio.

Run from the repository root::

    .venv/bin/python bench/rpc_overhead.py --steps 2000 --repeats 5

Every figure is wall-clock microseconds per loop step, measured in one run with every
server up at once; cases are interleaved (each repeat times every case once, in an order
rotated by the repeat) and the median over repeats is printed.

Baselines, served by this same file in a subprocess (``--serve-baseline ADDRESS``) with
grpc's generic handlers and raw bytes, so no proto is involved:

- bare unary: one ``unary_unary`` round trip of a small byte string, loopback TCP;
- bare bidi ping-pong: one request and one reply on an open ``stream_stream`` call;
- bare unary over a Unix-domain socket.

The engine is ``IdleEngine`` below (one small datapack in, one out, ``step`` does nothing),
served by the real ``neuroloop engine`` command in its own process:

- set + step + get: ``EngineClient.set_datapacks``, ``step`` with nothing to get, then
  ``get_datapacks`` (three round trips per loop step, the NRP-core way);
- Step: one ``EngineClient.step`` (set, advance, get in one round trip);
- loop step: ``Simulation.step()`` of a config with that engine and a transceiver function
  that sends the observation back as the action (FTILoop, functions, codec, the client's
  asynchronous Step: what ``neuroloop run`` does per SimulationTimestep);
- Step and loop step again with the engine served at a ``unix:`` address (the simulation
  connects to it with ``EmptyLaunchCommand``);
- the price of the engine secret: Step with and without it, and the loop step of a
  simulation connecting (``EmptyLaunchCommand``, tcp) to an engine started with
  ``--secret-file`` against one started without (the forked loop step carries its
  simulation's secret too);
- protobuf datapacks: the loop step again with ``DumpStringEngine``, whose observation and
  action are NRP-core ``Dump.String`` messages (they travel as type name and bytes and reach
  the function as messages).

The targets: one loop step over one idle engine costs at most ``TARGET_RATIO`` times a bare
unary round trip measured in the same run, with tensor datapacks and with ``Dump.String``
ones, and at most ``SECRET_TARGET_RATIO`` times the same loop step without a secret.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from neuroloop.client import EngineClient
from neuroloop.datapack import DataPackValue
from neuroloop.engine import Engine
from neuroloop.launcher import Launcher
from neuroloop.secret import new_secret
from neuroloop.server import READY_PREFIX
from neuroloop.simulation import Simulation
from nrp_protobuf import dump_pb2

BENCH_FILE = Path(__file__).resolve()
DEFAULT_STEPS = 2000
DEFAULT_REPEATS = 5
WARMUP_STEPS = 200
"""Loop steps run once per case before timing (connections, caches, lazy imports)."""
TARGET_RATIO = 1.5
"""A loop step over one idle engine may cost at most this many bare unary round trips."""
SECRET_TARGET_RATIO = 1.05
"""An authenticated loop step may cost at most this many unauthenticated ones."""

ENGINE_NAME = "idle"
OBSERVATION = "observation"
ACTION = "action"
DATAPACK_SHAPE = (8,)
"""Shape of the float32 observation and action: a small joint-state-sized vector."""
DUMP_TEXT = '{"joints": [0, 0, 0, 0]}'
"""The Dump.String observation of DumpStringEngine: about as many bytes as the tensor."""
TIMESTEP_S = 0.001
TIMESTEP_NS = 1_000_000
COMMAND_TIMEOUT_S = 10.0
LAUNCH_TIMEOUT_S = 30.0

BASELINE_NAME = "baseline"
BASELINE_SERVICE = "neuroloop.bench.Echo"
UNARY_METHOD = f"/{BASELINE_SERVICE}/Echo"
STREAM_METHOD = f"/{BASELINE_SERVICE}/EchoStream"
BASELINE_PAYLOAD = bytes(64)
"""About the size of a serialized StepRequest carrying one 8-float datapack."""
SERVER_WORKERS = 4
"""Same thread pool size as ``neuroloop.server.serve``."""
PARENT_POLL_S = 0.5

FORWARD_FUNCTION = f'''\
"""Sends the idle engine's observation straight back to it as its action."""

from neuroloop.datapack import DataPack, DataPackIdentifier
from neuroloop.functions import EngineDataPack, TransceiverFunction


@EngineDataPack(keyword="observation", id=DataPackIdentifier("{OBSERVATION}", "{ENGINE_NAME}"))
@TransceiverFunction("{ENGINE_NAME}")
def forward(observation: DataPack) -> list[DataPack]:
    return [DataPack("{ACTION}", "{ENGINE_NAME}", observation.data)]
'''


class IdleEngine(Engine):
    """An engine that does no work: offers a constant ``observation``, accepts ``action``."""

    def initialize(self, config: Mapping[str, Any]) -> None:
        self.observation: DataPackValue = np.zeros(DATAPACK_SHAPE, np.float32)
        self.action: DataPackValue = None

    def reset(self, seed: int | None) -> None:
        self.action = None

    def step(self, timestep_ns: int) -> None:
        pass

    @property
    def datapack_names(self) -> Sequence[str]:
        return (OBSERVATION, ACTION)

    def get_datapack(self, name: str) -> DataPackValue:
        return self.observation if name == OBSERVATION else self.action

    def set_datapack(self, name: str, value: DataPackValue) -> None:
        if name != ACTION:
            raise ValueError(f"[{self.name}] {name!r} is read-only")
        self.action = value


class DumpStringEngine(IdleEngine):
    """The idle engine with NRP-core ``Dump.String`` messages as observation and action."""

    def initialize(self, config: Mapping[str, Any]) -> None:
        super().initialize(config)
        self.observation = dump_pb2.String(string_stream=DUMP_TEXT)


# -- the baseline server (runs in its own process) ---------------------------------------------


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _echo_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from requests


def serve_baseline(address: str, parent_pid: int) -> None:
    """Serve the echo service at ``address`` until the parent process is gone.

    Announces itself with the engine server's ready line, so ``Launcher`` can wait for it.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_WORKERS))
    handler = grpc.method_handlers_generic_handler(
        BASELINE_SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
            "EchoStream": grpc.stream_stream_rpc_method_handler(_echo_stream),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"[{BASELINE_NAME}] cannot bind {address}")
    bound = address if address.startswith("unix:") else f"{address.rpartition(':')[0]}:{port}"
    server.start()
    print(f"{READY_PREFIX} name={BASELINE_NAME} address={bound}", flush=True)
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    server.stop(None)


# -- the cases -------------------------------------------------------------------------------


@dataclass
class Case:
    """One way of doing a loop step, and its timings."""

    label: str
    run: Callable[[int], None]
    """Does ``n`` loop steps."""
    us_per_step: list[float] = field(default_factory=list)

    def time_once(self, steps: int) -> None:
        started = time.perf_counter()
        self.run(steps)
        self.us_per_step.append((time.perf_counter() - started) / steps * 1e6)

    @property
    def median_us(self) -> float:
        return statistics.median(self.us_per_step)


class Servers:
    """Starts the servers the cases talk to and stops them all on exit."""

    def __init__(self, stack: ExitStack, directory: Path) -> None:
        self.directory = directory
        self.launcher = stack.enter_context(Launcher(echo_stdout=False))

    def baseline(self, address: str) -> str:
        command = [
            sys.executable,
            str(BENCH_FILE),
            "--serve-baseline",
            address,
            "--parent-pid",
            str(os.getpid()),
        ]
        return self._start(f"{BASELINE_NAME} {address}", command)

    def engine(self, address: str, secret_file: Path | None = None) -> str:
        secret = [] if secret_file is None else ["--secret-file", str(secret_file)]
        command = [
            sys.executable,
            "-m",
            "neuroloop",
            "engine",
            "--engine",
            f"{BENCH_FILE}:IdleEngine",
            "--name",
            ENGINE_NAME,
            "--address",
            address,
            "--parent-pid",
            str(os.getpid()),
            *secret,
        ]
        return self._start(f"{ENGINE_NAME} {address}", command)

    def unix_address(self, name: str) -> str:
        return f"unix:{self.directory / name}.sock"

    def _start(self, name: str, command: list[str]) -> str:
        # The launcher adds SINGLE_THREAD_ENV and puts each process in its own group.
        process = self.launcher.start(name, command)
        return self.launcher.wait_announced(process, LAUNCH_TIMEOUT_S)


def bare_unary(stack: ExitStack, address: str) -> Callable[[int], None]:
    """One blocking unary call of the echo service per loop step."""
    channel = stack.enter_context(grpc.insecure_channel(address))
    call = channel.unary_unary(UNARY_METHOD)

    def run(steps: int) -> None:
        for _ in range(steps):
            call(BASELINE_PAYLOAD)

    return run


def bare_ping_pong(stack: ExitStack, address: str) -> Callable[[int], None]:
    """One request and one reply per loop step on a bidi stream that stays open."""
    channel = stack.enter_context(grpc.insecure_channel(address))
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def requests() -> Iterator[bytes]:
        while (request := outbox.get()) is not None:
            yield request

    replies = channel.stream_stream(STREAM_METHOD)(requests())
    stack.callback(replies.cancel)
    stack.callback(outbox.put, None)

    def run(steps: int) -> None:
        for _ in range(steps):
            outbox.put(BASELINE_PAYLOAD)
            next(replies)

    return run


def engine_client(stack: ExitStack, address: str, secret: str | None = None) -> EngineClient:
    """A client of the IdleEngine serving at ``address`` (with ``secret``), initialized."""
    client = EngineClient(ENGINE_NAME, address, COMMAND_TIMEOUT_S, secret)
    stack.callback(client.close)
    client.wait_ready(LAUNCH_TIMEOUT_S)
    client.initialize({})
    return client


def set_step_get(client: EngineClient) -> Callable[[int], None]:
    """Three round trips per loop step: SetDataPacks, Step (advance only), GetDataPacks."""
    action = {ACTION: np.zeros(DATAPACK_SHAPE, np.float32)}

    def run(steps: int) -> None:
        for _ in range(steps):
            client.set_datapacks(action)
            client.step({}, TIMESTEP_NS, ())
            client.get_datapacks([OBSERVATION])

    return run


def single_step(client: EngineClient) -> Callable[[int], None]:
    """One Step round trip per loop step: set the action, advance, get the observation."""
    action = {ACTION: np.zeros(DATAPACK_SHAPE, np.float32)}
    get = [OBSERVATION]

    def run(steps: int) -> None:
        for _ in range(steps):
            client.step(action, TIMESTEP_NS, get)

    return run


def simulation(
    stack: ExitStack,
    directory: Path,
    tag: str,
    address: str | None = None,
    secret_file: Path | None = None,
    engine_class: str = "IdleEngine",
) -> Callable[[int], None]:
    """A Simulation over one ``engine_class`` of this file: forked on loopback TCP, or
    already serving at ``address`` (with the secret in ``secret_file``, if any)."""
    functions = directory / "forward.py"
    functions.write_text(FORWARD_FUNCTION)
    engine: dict[str, Any] = {
        "EngineName": ENGINE_NAME,
        "EngineType": "python",
        "EngineClass": f"{BENCH_FILE}:{engine_class}",
        "ProtobufPackages": ["Dump"],
        "EngineTimestep": TIMESTEP_S,
        "EngineCommandTimeout": COMMAND_TIMEOUT_S,
        "EngineLaunchTimeout": LAUNCH_TIMEOUT_S,
    }
    if address is not None:
        engine["EngineLaunchCommand"] = {"LaunchType": "EmptyLaunchCommand"}
        engine["ServerAddress"] = address
        engine["EngineSecretFile"] = None if secret_file is None else str(secret_file)
    config = {
        "SimulationName": "rpc_overhead",
        "SimulationTimestep": TIMESTEP_S,
        "EngineConfigs": [engine],
        "DataPackProcessingFunctions": [{"Name": "forward", "FileName": functions.name}],
    }
    path = directory / f"simulation_{tag}.json"
    path.write_text(json.dumps(config, indent=2))
    sim = stack.enter_context(Simulation.from_config(path, echo_engine_output=False))

    def run(steps: int) -> None:
        for _ in range(steps):
            sim.step()

    return run


def build_cases(stack: ExitStack, directory: Path) -> dict[str, Case]:
    """Start every server and connect to it; keys name the cases in the report."""
    servers = Servers(stack, directory)
    baseline_tcp = servers.baseline("127.0.0.1:0")
    baseline_unix = servers.baseline(servers.unix_address("baseline"))
    engine_tcp = engine_client(stack, servers.engine("127.0.0.1:0"))
    engine_unix = engine_client(stack, servers.engine(servers.unix_address("engine")))
    simulation_unix_address = servers.engine(servers.unix_address("simulation"))
    secret = new_secret()
    secret_file = directory / "engine.secret"
    secret_file.write_text(secret)
    engine_secret = engine_client(stack, servers.engine("127.0.0.1:0", secret_file), secret)
    loop_secret_address = servers.engine("127.0.0.1:0", secret_file)
    loop_open_address = servers.engine("127.0.0.1:0")
    return {
        "unary": Case("bare grpcio unary, tcp", bare_unary(stack, baseline_tcp)),
        "ping_pong": Case("bare grpcio bidi ping-pong, tcp", bare_ping_pong(stack, baseline_tcp)),
        "unary_unix": Case("bare grpcio unary, unix", bare_unary(stack, baseline_unix)),
        "set_step_get": Case("engine: set + step + get (3 calls), tcp", set_step_get(engine_tcp)),
        "step": Case("engine: Step (1 call), tcp", single_step(engine_tcp)),
        "loop": Case("Simulation loop step, tcp", simulation(stack, directory, "tcp")),
        "step_unix": Case("engine: Step (1 call), unix", single_step(engine_unix)),
        "loop_unix": Case(
            "Simulation loop step, unix",
            simulation(stack, directory, "unix", simulation_unix_address),
        ),
        "step_secret": Case("engine: Step (1 call), tcp, secret", single_step(engine_secret)),
        "loop_secret": Case(
            "Simulation loop step, tcp, connected, secret",
            simulation(stack, directory, "secret", loop_secret_address, secret_file),
        ),
        "loop_open": Case(
            "Simulation loop step, tcp, connected, no secret",
            simulation(stack, directory, "open", loop_open_address),
        ),
        "loop_dump": Case(
            "Simulation loop step, tcp, Dump.String datapacks",
            simulation(stack, directory, "dump", engine_class=DumpStringEngine.__name__),
        ),
    }


def measure(cases: Sequence[Case], steps: int, repeats: int) -> None:
    """Warm every case up, then time each once per repeat, rotating the order."""
    for case in cases:
        case.run(WARMUP_STEPS)
    for repeat in range(repeats):
        shift = repeat % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            case.time_once(steps)


def report(cases: Mapping[str, Case], steps: int, repeats: int, load: tuple[float, float]) -> None:
    unary = cases["unary"].median_us
    width = max(len(case.label) for case in cases.values())
    print(f"\nµs per loop step, median of {repeats} repeats x {steps} steps (interleaved)")
    cpus = os.cpu_count()
    print(f"1-minute load average before / after: {load[0]:.2f} / {load[1]:.2f} ({cpus} CPUs)")
    print(f"{'case':<{width}}  {'µs/step':>8}  {'min':>8}  {'max':>8}  {'x unary':>7}")
    for case in cases.values():
        print(
            f"{case.label:<{width}}  {case.median_us:8.1f}  {min(case.us_per_step):8.1f}  "
            f"{max(case.us_per_step):8.1f}  {case.median_us / unary:7.2f}"
        )

    def ratio(numerator: str, denominator: str) -> float:
        return cases[numerator].median_us / cases[denominator].median_us

    print()
    print(f"set + step + get / Step (tcp):        {ratio('set_step_get', 'step'):.2f}x")
    print(f"loop step / Step (tcp):               {ratio('loop', 'step'):.2f}x")
    print(f"Step unix / Step tcp:                 {ratio('step_unix', 'step'):.2f}x")
    print(f"loop step unix / loop step tcp:       {ratio('loop_unix', 'loop'):.2f}x")
    print(f"bare unary unix / bare unary tcp:     {ratio('unary_unix', 'unary'):.2f}x")
    print(f"Step secret / Step no secret (tcp):   {ratio('step_secret', 'step'):.2f}x")
    print(f"loop step Dump.String / tensor (tcp): {ratio('loop_dump', 'loop'):.2f}x")
    found = ratio("loop_secret", "loop_open")
    verdict = "met" if found <= SECRET_TARGET_RATIO else "NOT met"
    print(
        f"target loop step with secret <= {SECRET_TARGET_RATIO}x without (tcp): "
        f"{found:.2f}x -> {verdict}"
    )
    for key in ("loop", "loop_unix", "loop_dump"):
        found = ratio(key, "unary")
        verdict = "met" if found <= TARGET_RATIO else "NOT met"
        print(
            f"target {cases[key].label} <= {TARGET_RATIO}x bare unary (tcp): "
            f"{found:.2f}x -> {verdict}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="loop steps per timing")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timings per case")
    parser.add_argument("--serve-baseline", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline:
        serve_baseline(args.serve_baseline, args.parent_pid or os.getppid())
        return 0
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    with tempfile.TemporaryDirectory(prefix="neuroloop-bench-") as directory, ExitStack() as stack:
        cases = build_cases(stack, Path(directory))
        load_before = os.getloadavg()[0]
        measure(list(cases.values()), args.steps, args.repeats)
        load_after = os.getloadavg()[0]
    report(cases, args.steps, args.repeats, (load_before, load_after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
