"""The per-simulation secret that every call to an engine carries.

The orchestrator makes one secret per simulation and hands it to each engine it starts in
the ``NEUROLOOP_ENGINE_SECRET`` environment variable, never on a command line; the engine
takes it out of its environment at start. Clients send it as gRPC metadata on every call,
and a server interceptor refuses any call without it (UNAUTHENTICATED), except the standard
gRPC health check.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

SECRET_ENV = "NEUROLOOP_ENGINE_SECRET"
"""Environment variable that hands an engine process its secret."""

METADATA_KEY = "neuroloop-engine-secret"
"""gRPC metadata key under which every call carries the secret."""

OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check"})
"""Methods that answer without the secret: health checks come from probes, not orchestrators.
Health's ``Watch`` is not one: each open watch holds a server thread, so strangers' watches
could starve the orchestrator."""

LOOPBACK_NAMES = ("localhost",)


def new_secret() -> str:
    """A fresh random secret for one simulation."""
    return secrets.token_hex(32)


def read_secret_file(path: str | Path) -> str:
    """The secret held in ``path``, surrounding whitespace stripped.

    Raises:
        ValueError: Naming the file and why it holds no usable secret.
    """
    try:
        secret = Path(path).read_text().strip()
    except OSError as error:
        raise ValueError(f"{str(path)!r} cannot be read ({error.strerror})") from None
    if not secret:
        raise ValueError(f"{str(path)!r} is empty")
    if not (secret.isascii() and secret.isprintable()):
        raise ValueError(f"{str(path)!r} holds other than printable ASCII (gRPC metadata)")
    return secret


def take_env_secret() -> str | None:
    """Remove the secret from this process's environment (so children never see it); return it."""
    return os.environ.pop(SECRET_ENV, None) or None


def is_local_address(address: str) -> bool:
    """True for a Unix socket or a loopback host: only this machine can reach the server."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def call_metadata(secret: str | None) -> tuple[tuple[str, str], ...] | None:
    """The metadata a client passes on every call (None when the engine has no secret)."""
    return None if secret is None else ((METADATA_KEY, secret),)


class SecretInterceptor(grpc.ServerInterceptor):
    """Refuses every call but health checks (``Check``) unless its metadata carries ``secret``.

    Runs once per call (a step stream is checked when it opens, not per message).

    Args:
        secret: The engine's secret.
        name: The engine's name, for the refusal's details.
    """

    def __init__(self, secret: str, name: str) -> None:
        self._secret = secret.encode()
        self._name = name

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None or method in OPEN_METHODS:
            return handler
        metadata = handler_call_details.invocation_metadata
        given = next((value for key, value in metadata or () if key == METADATA_KEY), "")
        given_bytes = given.encode() if isinstance(given, str) else bytes(given)
        if hmac.compare_digest(given_bytes, self._secret):
            return handler
        return _refusal(handler, self._refusal_details(method, bool(given)))

    def _refusal_details(self, method: str, carried: bool) -> str:
        verb = method.rpartition("/")[2]
        what = "a wrong engine secret" if carried else "no engine secret"
        return (
            f"[{self._name}] {verb}: refused: the call carries {what}; this engine obeys only "
            "the orchestrator that holds its secret (EngineSecretFile for an engine you started)"
        )


def _refusal(handler: grpc.RpcMethodHandler, details: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that aborts with UNAUTHENTICATED."""

    def abort(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, details)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)
