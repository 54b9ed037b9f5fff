"""The gRPC server that serves any Engine: a thin servicer plus health checks and signals.

Each RPC is a few lines: proto -> numpy -> ``EngineHost`` call -> proto. Errors the engine
raises go back as gRPC status details that name the engine and the call, e.g.
``[physics] step: ValueError: ...``; ``ValueError``/``KeyError``/``TypeError`` map to
INVALID_ARGUMENT, anything else to INTERNAL.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from neuroloop.engine import Engine, EngineHost
from neuroloop.errors import UsageError
from neuroloop.launcher import READY_PREFIX
from neuroloop.protocol import codec
from neuroloop.protocol import engine_pb2 as pb
from neuroloop.protocol import engine_pb2_grpc as pb_grpc
from neuroloop.secret import SECRET_ENV, SecretInterceptor

MAX_MESSAGE_BYTES = 512 * 1024 * 1024
"""Largest message either side accepts: batched camera images exceed gRPC's 4 MB default."""

CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)
SERVER_OPTIONS = (
    *CHANNEL_OPTIONS,
    # Without this, gRPC lets a second server bind a port that is already taken.
    ("grpc.so_reuseport", 0),
)
PARENT_POLL_S = 0.5
STOP_GRACE_S = 2.0
HARD_EXIT_S = 5.0
"""Seconds after a stop (Shutdown, SIGTERM, the orchestrator gone) after which the engine
process exits even if a step or the engine's own shutdown is still running."""
PARENT_GONE_EXIT_S = 10.0
"""Seconds after its orchestrator is gone after which an engine process exits, whatever it
is doing (loading its engine, a step that does not end)."""
EXIT_STUCK = 3
"""Exit status of an engine process that had to leave a stuck step behind."""
USER_ERRORS = (ValueError, KeyError, TypeError)
SERVER_THREADS = 8
"""Each orchestrator's step stream holds one server thread; the rest serve unary calls."""
DEFAULT_MAX_TIMESTEP_S = 60.0
"""Most simulated time one Step may ask for: a huge timestep would wedge the engine."""

Reply = TypeVar("Reply")


class EngineServicer(pb_grpc.EngineServicer):
    """Serves one hosted engine over the ``neuroloop.v1.Engine`` service.

    Args:
        host: The engine host to call.
        on_shutdown: Called after the Shutdown RPC has shut the engine down.
        max_timestep_ns: Largest ``timestep_ns`` one step may ask for.
    """

    def __init__(
        self, host: EngineHost, on_shutdown: Callable[[], None], max_timestep_ns: int
    ) -> None:
        self.host = host
        self.on_shutdown = on_shutdown
        self.max_timestep_ns = max_timestep_ns
        self.packages: tuple[str, ...] = ()
        """The engine's ``ProtobufPackages``: the only messages it sends or accepts."""

    def _call(
        self,
        context: grpc.ServicerContext,
        verb: str,
        call: Callable[[], Reply],
        empty: type[Reply],
    ) -> Reply:
        try:
            return call()
        except Exception as error:
            code, details = self._failure(verb, error)
        context.set_code(code)
        context.set_details(details)
        return empty()

    def _failure(self, verb: str, error: Exception) -> tuple[grpc.StatusCode, str]:
        """The status that reports ``error``: user errors are INVALID_ARGUMENT, others INTERNAL."""
        if isinstance(error, USER_ERRORS):
            return grpc.StatusCode.INVALID_ARGUMENT, _describe(self.host.name, verb, error)
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        return grpc.StatusCode.INTERNAL, _describe(self.host.name, verb, error)

    def Initialize(
        self, request: pb.InitializeRequest, context: grpc.ServicerContext
    ) -> pb.InitializeReply:
        def initialize() -> pb.InitializeReply:
            config = json.loads(request.config_json)
            self.packages = tuple(config.get("ProtobufPackages", ()))
            names = self.host.initialize(config)
            return pb.InitializeReply(time_ns=self.host.time_ns, datapack_names=names)

        return self._call(context, "initialize", initialize, pb.InitializeReply)

    def Reset(self, request: pb.ResetRequest, context: grpc.ServicerContext) -> pb.TimeReply:
        seed = request.seed if request.HasField("seed") else None
        return self._call(
            context, "reset", lambda: pb.TimeReply(time_ns=self.host.reset(seed)), pb.TimeReply
        )

    def Step(self, request: pb.StepRequest, context: grpc.ServicerContext) -> pb.StepReply:
        return self._call(
            context,
            "step",
            lambda: self._step(request.set, request.timestep_ns, request.get),
            pb.StepReply,
        )

    def StepStream(
        self, requests: Iterator[pb.StepRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.StepReply]:
        for request in requests:
            try:
                reply = self._step(request.set, request.timestep_ns, request.get)
            except Exception as error:
                context.abort(*self._failure("step", error))
            yield reply

    def GetDataPacks(
        self, request: pb.GetDataPacksRequest, context: grpc.ServicerContext
    ) -> pb.StepReply:
        return self._call(context, "get", lambda: self._step((), 0, request.names), pb.StepReply)

    def SetDataPacks(
        self, request: pb.SetDataPacksRequest, context: grpc.ServicerContext
    ) -> pb.TimeReply:
        return self._call(
            context,
            "set",
            lambda: pb.TimeReply(time_ns=self._step(request.datapacks, 0, ()).time_ns),
            pb.TimeReply,
        )

    def Shutdown(self, request: pb.ShutdownRequest, context: grpc.ServicerContext) -> pb.TimeReply:
        def shutdown() -> pb.TimeReply:
            time_ns = self.host.shutdown()
            self.on_shutdown()
            return pb.TimeReply(time_ns=time_ns)

        return self._call(context, "shutdown", shutdown, pb.TimeReply)

    def _step(
        self, to_set: Iterable[pb.DataPack], timestep_ns: int, names: Iterable[str]
    ) -> pb.StepReply:
        if timestep_ns > self.max_timestep_ns:
            raise ValueError(
                f"expected a timestep <= {self.max_timestep_ns} ns (--max-timestep). "
                f"Received: timestep_ns={timestep_ns}"
            )
        decoded = [codec.decode(message, self.packages) for message in to_set]
        time_ns, values = self.host.step(
            [(name, value) for name, _, value in decoded], timestep_ns, names
        )
        engine = self.host.name
        return pb.StepReply(
            time_ns=time_ns,
            datapacks=[
                codec.encode(name, engine, value, self.packages)
                if value is not None
                else _empty(name, engine)
                for name, value in values.items()
            ],
        )


def _empty(name: str, engine: str) -> pb.DataPack:
    return pb.DataPack(id=pb.DataPackId(name=name, engine=engine))


def _describe(engine: str, verb: str, error: BaseException) -> str:
    message = str(error)
    prefix = f"[{engine}] {verb}:"
    if message.startswith(f"[{engine}]"):
        return message
    return f"{prefix} {type(error).__name__}: {message}"


def serve(
    engine: Engine,
    address: str,
    *,
    fallback_port: bool = False,
    secret: str | None = None,
    max_timestep_s: float = DEFAULT_MAX_TIMESTEP_S,
) -> None:
    """Serve ``engine`` at ``address`` until Shutdown, SIGTERM, SIGINT or the parent's death.

    Prints ``NEUROLOOP-ENGINE-READY name=NAME address=ADDRESS`` on stdout once serving,
    which is how the launcher learns the port actually bound.

    Args:
        engine: The engine to serve.
        address: ``host:port`` (port 0 picks a free one) or ``unix:/path``.
        fallback_port: Bind a free port on the same host when ``address``'s port is taken.
        secret: Refuse every call (but health checks) that does not carry it; None accepts
            any client, and says so loudly.
        max_timestep_s: Most simulated seconds one step may ask for.
    """
    stop = threading.Event()
    host = EngineHost(engine)
    interceptors = [] if secret is None else [SecretInterceptor(secret, engine.name)]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=SERVER_THREADS),
        interceptors=interceptors,
        options=SERVER_OPTIONS,
    )
    servicer = EngineServicer(host, stop.set, int(max_timestep_s * 1e9))
    pb_grpc.add_EngineServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = _bind(server, address, fallback_port, engine.name)
    server.start()
    if secret is None:
        print(
            f"[{engine.name}] WARNING: no engine secret (--secret-file or {SECRET_ENV}): this "
            f"engine at {bound} is UNAUTHENTICATED and obeys any client that reaches it",
            file=sys.stderr,
            flush=True,
        )
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"{READY_PREFIX} name={engine.name} address={bound}", flush=True)
    while not stop.wait(PARENT_POLL_S):
        pass
    # An engine stuck in a step holds the engine lock that shutdown waits for: leave anyway.
    deadline = threading.Timer(HARD_EXIT_S, os._exit, args=(EXIT_STUCK,))
    deadline.daemon = True
    deadline.start()
    health_servicer.enter_graceful_shutdown()
    server.stop(STOP_GRACE_S).wait()
    host.shutdown()


def _bind(server: grpc.Server, address: str, fallback_port: bool, name: str) -> str:
    if address.startswith("unix:"):
        if server.add_insecure_port(address) == 0:
            raise UsageError(f"[{name}] cannot bind the Unix socket {address}")
        return address
    host, _, port = address.rpartition(":")
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0 and fallback_port:
        print(f"[{name}] port {port} is taken; binding a free port on {host}", file=sys.stderr)
        bound = server.add_insecure_port(f"{host}:0")
    if bound == 0:
        raise UsageError(
            f"[{name}] cannot bind {address}: the port is taken or the host is unknown"
        )
    return f"{host}:{bound}"


def watch_parent(parent_pid: int) -> None:
    """From now on, stop this process when ``parent_pid`` (its orchestrator) is gone.

    A thread sends this process SIGTERM, which a serving engine answers by stopping (and a
    process still loading its engine, by the CLI's interrupt); one that is stuck anyway is
    ended ``PARENT_GONE_EXIT_S`` later.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(PARENT_GONE_EXIT_S)
        os._exit(EXIT_STUCK)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
