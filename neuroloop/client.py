"""The orchestrator's side of one engine: typed calls over gRPC with deadlines.

Every call carries the engine's ``EngineCommandTimeout`` as its deadline (loop steps, which
travel on one long-lived step stream, wait for their reply that long), so a hung engine
is an ``EngineTimeoutError`` naming the engine and the call, never a hang. Every reply's
absolute time is checked: time that goes backwards is an ``EngineError``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from neuroloop.datapack import DataPackValue
from neuroloop.errors import EngineError, EngineTimeoutError
from neuroloop.protocol import codec
from neuroloop.protocol import engine_pb2 as pb
from neuroloop.protocol import engine_pb2_grpc as pb_grpc
from neuroloop.secret import call_metadata
from neuroloop.server import CHANNEL_OPTIONS

HEALTH_POLL_S = 0.05
HEALTH_CALL_TIMEOUT_S = 1.0
CLOSE_TIMEOUT_S = 2.0
"""A channel interrupted mid-call (Ctrl-C in a notebook) can hang in close(): bound it."""


class EngineUnavailableError(EngineError):
    """The engine's server could not be reached (it may have exited)."""


class _StepStream:
    """One StepStream call: requests go in through a queue, replies come back in order.

    A reader thread moves replies (or the error that ended the stream) into a queue, so
    waiting for a reply has a timeout and the caller's thread never blocks inside gRPC.
    """

    def __init__(
        self, stub: pb_grpc.EngineStub, metadata: tuple[tuple[str, str], ...] | None
    ) -> None:
        self._requests: queue.SimpleQueue[pb.StepRequest | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[pb.StepReply | grpc.RpcError] = queue.SimpleQueue()
        self._call = stub.StepStream(iter(self._requests.get, None), metadata=metadata)
        self.open = True
        threading.Thread(target=self._read, daemon=True, name="step-stream").start()

    def _read(self) -> None:
        try:
            for reply in self._call:
                self._replies.put(reply)
        except grpc.RpcError as error:
            self.open = False  # before the error is seen, so no one sends on a dead stream
            self._replies.put(error)
        finally:
            self.open = False

    def send(self, request: pb.StepRequest) -> None:
        self._requests.put(request)

    def receive(self, timeout_s: float | None) -> pb.StepReply:
        """The next reply; raises ``queue.Empty`` on timeout, ``grpc.RpcError`` on failure."""
        item = self._replies.get(timeout=timeout_s)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def close(self) -> None:
        self.open = False
        self._requests.put(None)
        self._call.cancel()


class StepResult:
    """A step in flight on an engine's step stream; ``result()`` waits for its reply."""

    def __init__(self, client: EngineClient, stream: _StepStream) -> None:
        self._client = client
        self._stream = stream

    def cancel(self) -> None:
        """Abandon the step (when the simulation is being torn down): close the stream."""
        self._stream.close()

    def result(self) -> dict[str, DataPackValue]:
        """Wait for the step to finish and return the datapacks it fetched, by name."""
        client = self._client
        try:
            reply = self._stream.receive(client.timeout_s)
        except queue.Empty:
            self._stream.close()  # a late reply must not answer the next step
            raise EngineTimeoutError(client._timeout_message("step")) from None
        except grpc.RpcError as error:
            raise client._translate("step", error) from None
        return client._received(reply, "step")


class EngineClient:
    """Calls one engine server.

    Args:
        name: The engine's name (``EngineName``), used in every error.
        address: ``host:port`` or ``unix:/path`` of the engine's server.
        timeout_s: Deadline of every call (``EngineCommandTimeout``); None: no deadline.
        secret: The engine's secret, sent with every call (health checks need none); None
            for an engine that has none.
    """

    def __init__(
        self, name: str, address: str, timeout_s: float | None, secret: str | None = None
    ) -> None:
        self.name = name
        self.address = address
        self.timeout_s = timeout_s
        self._metadata = call_metadata(secret)
        self.time_ns = 0
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.EngineStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._stream: _StepStream | None = None

    def wait_ready(self, timeout_s: float, alive: Callable[[], None] | None = None) -> None:
        """Poll the standard gRPC health service until the server answers SERVING.

        Args:
            timeout_s: How long to wait in all.
            alive: Called between polls; raises if the engine's process has died.

        Raises:
            EngineTimeoutError: If the server is not serving within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        request = health_pb2.HealthCheckRequest(service="")
        while True:
            if alive is not None:
                alive()
            try:
                reply = self._health.Check(request, timeout=HEALTH_CALL_TIMEOUT_S)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise EngineTimeoutError(
                    f"[{self.name}] launch: the engine server at {self.address} did not answer "
                    f"health checks within {timeout_s:g} s (EngineLaunchTimeout)"
                )
            time.sleep(HEALTH_POLL_S)

    def initialize(self, config: Mapping[str, Any]) -> list[str]:
        """Send the engine its config section; return the datapack names it offers."""
        request = pb.InitializeRequest(config_json=json.dumps(config, default=_plain))
        reply = self._call("initialize", self._stub.Initialize, request)
        self.time_ns = reply.time_ns
        return list(reply.datapack_names)

    def reset(self, seed: int | None) -> int:
        """Reset the engine; its time starts again from the reply's time."""
        request = pb.ResetRequest(seed=seed) if seed is not None else pb.ResetRequest()
        reply = self._call("reset", self._stub.Reset, request)
        self.time_ns = reply.time_ns
        return self.time_ns

    def step_async(
        self,
        to_set: Mapping[str, DataPackValue],
        timestep_ns: int,
        get: Sequence[str],
    ) -> StepResult:
        """Start one round trip: set datapacks, advance by ``timestep_ns``, fetch ``get``."""
        request = pb.StepRequest(set=self._encode(to_set), timestep_ns=timestep_ns, get=get)
        # One long-lived stream: a unary .future() starts a channel spin thread whenever no
        # call is in flight (about 1 ms a step), and a stream needs no thread per call.
        if self._stream is None or not self._stream.open:
            self._stream = _StepStream(self._stub, self._metadata)
        self._stream.send(request)
        return StepResult(self, self._stream)

    def step(
        self,
        to_set: Mapping[str, DataPackValue],
        timestep_ns: int,
        get: Sequence[str],
    ) -> dict[str, DataPackValue]:
        """One blocking round trip (a unary Step call); see ``step_async``."""
        request = pb.StepRequest(set=self._encode(to_set), timestep_ns=timestep_ns, get=get)
        reply = self._call("step", self._stub.Step, request)
        return self._received(reply, "step")

    def get_datapacks(self, names: Iterable[str]) -> dict[str, DataPackValue]:
        request = pb.GetDataPacksRequest(names=list(names))
        reply = self._call("get", self._stub.GetDataPacks, request)
        return self._received(reply, "get")

    def _received(self, reply: pb.StepReply, verb: str) -> dict[str, DataPackValue]:
        """The datapacks of a reply by name, after checking and taking its engine time."""
        self._advance_time(reply.time_ns, verb)
        return {message.id.name: codec.decode(message)[2] for message in reply.datapacks}

    def set_datapacks(self, values: Mapping[str, DataPackValue]) -> None:
        request = pb.SetDataPacksRequest(datapacks=self._encode(values))
        reply = self._call("set", self._stub.SetDataPacks, request)
        self._advance_time(reply.time_ns, "set")

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Ask the engine to shut down and stop serving."""
        self._call("shutdown", self._stub.Shutdown, pb.ShutdownRequest(), timeout_s)

    def close(self) -> None:
        """Close the channel; give up after CLOSE_TIMEOUT_S rather than hang the caller."""
        if self._stream is not None:
            self._stream.close()
        closer = threading.Thread(target=self._channel.close, daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)

    def _encode(self, values: Mapping[str, DataPackValue]) -> list[pb.DataPack]:
        """Wire datapacks for this engine; a value that cannot travel is an EngineError."""
        try:
            return [codec.encode(name, self.name, value) for name, value in values.items()]
        except ValueError as error:
            raise EngineError(str(error)) from None

    def _advance_time(self, time_ns: int, verb: str) -> None:
        if time_ns < self.time_ns:
            raise EngineError(
                f"[{self.name}] {verb}: engine time went backwards: expected at least "
                f"{self.time_ns} ns. Received: time_ns={time_ns}"
            )
        self.time_ns = time_ns

    def _call(
        self, verb: str, method: Callable[..., Any], request: Any, timeout_s: float | None = None
    ) -> Any:
        """One unary call with the secret and a deadline (default ``EngineCommandTimeout``)."""
        deadline = self.timeout_s if timeout_s is None else timeout_s
        try:
            return method(request, timeout=deadline, metadata=self._metadata)
        except grpc.RpcError as error:
            raise self._translate(verb, error) from None

    def _timeout_message(self, verb: str) -> str:
        return (
            f"[{self.name}] {verb}: no answer within {self.timeout_s:g} s "
            "(EngineCommandTimeout); the engine may be hung"
        )

    def _translate(self, verb: str, error: grpc.RpcError) -> EngineError:
        code = error.code()
        details = error.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return EngineTimeoutError(self._timeout_message(verb))
        if code == grpc.StatusCode.UNAVAILABLE:
            return EngineUnavailableError(
                f"[{self.name}] {verb}: engine server at {self.address} is unavailable ({details})"
            )
        if details.startswith(f"[{self.name}]"):
            return EngineError(details)
        return EngineError(f"[{self.name}] {verb}: {code.name}: {details}")


def _plain(value: object) -> object:
    """JSON encoder fallback: read-only mappings (frozen config sections) become dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
