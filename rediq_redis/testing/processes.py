"""Helpers of the topology harness: bounded waits, admin clients, cluster ports, and a
redis-server that speaks TLS only."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from typing import Any

from redis import Redis

from .certificates import Certificates
from .redis_server import RedisServer

__all__ = ["TlsRedisServer", "admin", "cluster_port", "command", "tls_client", "wait_until"]


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Call ``condition`` until it is true; ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            if condition():
                return
        except Exception:  # a node still starting or just killed
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout_s} s")
        time.sleep(delay)  # bounded wait on an external process
        delay = min(delay * 2, 0.1)


def cluster_port() -> int:
    """A free port below 55536 whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def admin(server: RedisServer) -> Redis:
    """A synchronous client of ``server`` through its unix socket (for the harness), with
    the server's ``--requirepass`` if it has one."""
    args = list(server.extra_args)
    password = args[args.index("--requirepass") + 1] if "--requirepass" in args else None
    return Redis(unix_socket_path=str(server.unix_socket), socket_timeout=5, password=password)


def command(client: Redis, *args: object) -> Any:
    """One command, as redis-py answers it (its generic entry point is untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def tls_client(certificates: Certificates, port: int, password: str | None = None) -> Redis:
    """A synchronous TLS client of 127.0.0.1:``port`` with the test client certificate."""
    return Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=5,
        password=password,
        ssl=True,
        ssl_ca_certs=str(certificates.ca.cert),
        ssl_certfile=str(certificates.client.cert),
        ssl_keyfile=str(certificates.client.key),
    )


class TlsRedisServer(RedisServer):
    """A redis-server that accepts TLS connections only (plus its unix socket, used by the
    harness). Clients must present a certificate signed by the test CA when
    ``require_client_cert``; replication (and the cluster bus, given
    ``--tls-cluster yes``) use TLS too."""

    def __init__(
        self,
        certificates: Certificates,
        *,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        require_client_cert: bool = True,
    ) -> None:
        super().__init__(port=port)
        tls = certificates.server
        self.extra_args = (
            "--tls-port",
            str(self.port),
            "--port",
            "0",
            "--tls-cert-file",
            str(tls.cert),
            "--tls-key-file",
            str(tls.key),
            "--tls-ca-cert-file",
            str(certificates.ca.cert),
            "--tls-auth-clients",
            "yes" if require_client_cert else "optional",
            "--tls-replication",
            "yes",
            *extra_args,
        )
        self.certificates = certificates

    def _wait_ready(self, timeout_s: float) -> None:
        wait_until(
            lambda: admin(self).ping() is True,
            f"TLS redis-server on port {self.port} answering PING",
            timeout_s,
        )

    def url(self, db: int = 0) -> str:
        return f"rediss://localhost:{self.port}/{db}"
