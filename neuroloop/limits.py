"""Bounds on one engine server's work: how many calls it serves at once, and when a call
that holds the engine counts as stuck.

An open call holds a server thread for as long as it lasts (an idle step stream, forever).
``CallLimiter`` lets at most ``limit`` calls run at once and refuses the next one at once
with RESOURCE_EXHAUSTED, so the server's spare threads always answer health checks, which
it never counts. ``StuckReport`` turns the standard health status to NOT_SERVING while one
engine call has held the engine for longer than a bound, and back to SERVING when it ends.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2

UNCOUNTED_METHODS = frozenset({"/grpc.health.v1.Health/Check"})
"""Calls that are never refused for lack of a slot: a health check ends at once."""

Behavior = Callable[[Any, grpc.ServicerContext], Any]
Handler: TypeAlias = grpc.RpcMethodHandler | None
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Handler]


class CallLimiter(grpc.ServerInterceptor):
    """Runs at most ``limit`` calls at once (health checks aside); refuses more.

    A call takes its slot when a server thread starts it and gives it back when that
    thread is done with it, so the bound is on threads held, whatever the client does.
    Put it after ``SecretInterceptor``: a call refused for its secret never takes a slot.

    Args:
        limit: Calls that may run at once.
        name: The engine's name, for the refusal's details.
    """

    def __init__(self, limit: int, name: str) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._name = name

    def intercept_service(
        self, continuation: Continuation, call: grpc.HandlerCallDetails
    ) -> Handler:
        handler = continuation(call)
        method: str = call.method
        if handler is None or method in UNCOUNTED_METHODS:
            return handler
        details = (
            f"[{self._name}] {method.rpartition('/')[2]}: refused: this engine already serves "
            f"{self.limit} calls at once (the most it serves)"
        )
        return _bounded(handler, self._slots, details)


def _bounded(
    handler: grpc.RpcMethodHandler, slots: threading.BoundedSemaphore, details: str
) -> grpc.RpcMethodHandler:
    """``handler`` whose behaviour first takes a slot (or aborts RESOURCE_EXHAUSTED)."""

    def take(context: grpc.ServicerContext) -> None:
        if not slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, details)

    def unary_reply(behavior: Behavior) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            take(context)
            try:
                return behavior(request, context)
            finally:
                slots.release()

        return call

    def streamed_replies(behavior: Behavior) -> Behavior:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            take(context)
            try:
                yield from behavior(request, context)
            finally:  # also when the stream is cancelled or dropped mid-way
                slots.release()

        return call

    coding = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            streamed_replies(handler.stream_stream), **coding
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary_reply(handler.stream_unary), **coding)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            streamed_replies(handler.unary_stream), **coding
        )
    return grpc.unary_unary_rpc_method_handler(unary_reply(handler.unary_unary), **coding)


class StuckReport:
    """Keeps the health status in step with whether the engine is stuck in one call.

    Args:
        health_servicer: The server's health service ("" is the whole server's status).
        name: The engine's name, for the lines on stderr.
        stuck_after_s: How long one call may hold the engine before health says
            NOT_SERVING.
    """

    def __init__(
        self, health_servicer: health.HealthServicer, name: str, stuck_after_s: float
    ) -> None:
        self._health = health_servicer
        self._name = name
        self.stuck_after_s = stuck_after_s
        self.stuck = False

    def update(self, busy_for_s: float, verb: str) -> None:
        """Report the engine's state: busy in ``verb`` for ``busy_for_s`` (0: idle)."""
        stuck = busy_for_s > self.stuck_after_s
        if stuck == self.stuck:
            return
        self.stuck = stuck
        if stuck:
            self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
            print(
                f"[{self._name}] {verb} has held the engine for more than "
                f"{self.stuck_after_s:g} s (--stuck-after): health reports NOT_SERVING",
                file=sys.stderr,
                flush=True,
            )
        else:
            self._health.set("", health_pb2.HealthCheckResponse.SERVING)
            print(
                f"[{self._name}] the stuck call ended: health reports SERVING",
                file=sys.stderr,
                flush=True,
            )
