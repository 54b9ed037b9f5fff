"""Ask an engine server whether it is serving: the standard gRPC health service, once.

::

    python -m neuroloop.healthcheck 127.0.0.1:9001      # exit 0 if SERVING, else 1
    python -m neuroloop.healthcheck 0.0.0.0:9001        # a bind address: checked on loopback

This is the health check of the engine services in ``docker-compose.yml``; it may be given
the engine's own ``--address``, because a wildcard host is checked on loopback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_TIMEOUT_S = 2.0
WILDCARD_HOSTS = ("0.0.0.0", "[::]", "::")
"""Hosts a server binds to mean "every interface"; a client reaches them on loopback."""
LOOPBACK = "127.0.0.1"


def client_address(address: str) -> str:
    """The address a client on the same host dials for a server bound at ``address``."""
    if address.startswith("unix:"):
        return address
    host, _, port = address.rpartition(":")
    return f"{LOOPBACK}:{port}" if host in WILDCARD_HOSTS else address


def check(address: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Return the server's health status name (``"SERVING"``, ...) or why there is none.

    Args:
        address: ``host:port`` or ``unix:/path``; a wildcard host means loopback.
        timeout_s: Deadline of the one Check call.
    """
    with grpc.insecure_channel(client_address(address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuroloop.healthcheck",
        description="Exit 0 if the gRPC server at ADDRESS answers SERVING, else 1.",
    )
    parser.add_argument("address", help="host:port or unix:/path (0.0.0.0 means loopback)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds")
    args = parser.parse_args(argv)
    status = check(args.address, args.timeout)
    if status == "SERVING":
        return 0
    print(f"{args.address}: {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
