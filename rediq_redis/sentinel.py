"""Redis Sentinel clients (``redis+sentinel://``, ``rediss+sentinel://``).

The clients talk to the current master of the service, which redis-py's
:class:`~redis.asyncio.sentinel.SentinelConnectionPool` asks the sentinels for whenever it
opens a connection. After a failover the old master's connections break; the bounded
re-send policy (:func:`~rediq_redis.connection.default_retry`) sends the command again on
a new connection, to the master the sentinels name by then, for up to
``RESEND_BUDGET_S``. Re-sending a script call is safe (docs/broker.md, "Lost replies").

Credentials in the URL and the TLS scheme apply to the sentinels and to the servers;
``redis_config["sentinel_kwargs"]`` overrides what the sentinel connections get.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from rediq_core.errors import BrokerError

from .connection import blocking_options
from .packing import fast_packing
from .topology import Topology

__all__ = ["make_sentinel_clients", "probe_sentinels", "sentinel_options"]

_TLS_PREFIX = "ssl"
_SENTINEL_TIMEOUT_S = 2.0


class _MasterFollowingConnection(SentinelManagedConnection):
    """A connection that asks the sentinels for the master every time it (re)connects.

    redis-py's connection asks them in ``connect()`` only; a command re-sent after a
    broken connection reconnects through ``connect_check_health()`` to the address it
    had, the old master's. Once the old master is back (empty, until the sentinels make
    it a replica) writes would land there and be lost."""

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        pool = self.connection_pool
        if not self.is_connected and isinstance(pool, SentinelConnectionPool) and pool.is_master:
            self.host, self.port = await pool.get_master_address()  # type: ignore[no-untyped-call]
        await super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


class _MasterFollowingSSLConnection(_MasterFollowingConnection, SentinelManagedSSLConnection):
    pass


def sentinel_options(
    topology: Topology, options: Mapping[str, Any], configured: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Connection options of the sentinels themselves."""
    found: dict[str, Any] = {
        k: v for k, v in options.items() if k.startswith((_TLS_PREFIX, "socket_connect"))
    }
    found["socket_timeout"] = _SENTINEL_TIMEOUT_S
    if topology.tls:
        found["ssl"] = True
    if topology.username is not None:
        found["username"] = topology.username
    if topology.password is not None:
        found["password"] = topology.password
    found.update(configured or {})
    return found


def _server_options(topology: Topology, options: Mapping[str, Any]) -> dict[str, Any]:
    found = dict(options)
    found["db"] = topology.db
    tls = topology.tls or bool(found.pop("ssl", False))
    found["connection_class"] = fast_packing(
        _MasterFollowingSSLConnection if tls else _MasterFollowingConnection
    )
    if topology.username is not None:
        found.setdefault("username", topology.username)
    if topology.password is not None:
        found.setdefault("password", topology.password)
    return found


def make_sentinel_clients(
    topology: Topology, options: Mapping[str, Any], configured: Mapping[str, Any] | None
) -> tuple[Redis, Redis]:
    """The main and the blocking client, both following the service's master."""
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(topology.hosts), sentinel_kwargs=sentinel_options(topology, options, configured)
    )
    server = _server_options(topology, options)
    main = sentinel.master_for(topology.service, redis_class=Redis, **server)
    blocking = sentinel.master_for(topology.service, redis_class=Redis, **blocking_options(server))
    return main, blocking


async def _ask(
    host: str, port: int, service: str, options: Mapping[str, Any]
) -> tuple[bool, str | None]:
    """(answered, error) of one sentinel asked for the master of ``service``."""
    client = Redis(host=host, port=port, **options)
    try:
        reply = await client.execute_command(  # type: ignore[no-untyped-call]
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", service
        )
        return True, None if reply else "unknown service"
    except redis_errors.RedisError as exc:
        return False, str(exc)
    finally:
        await client.aclose()


async def probe_sentinels(
    topology: Topology, options: Mapping[str, Any], configured: Mapping[str, Any] | None
) -> None:
    """Raise a one-line :class:`BrokerError` if no sentinel answers, or if none knows the
    service."""
    kwargs = sentinel_options(topology, options, configured)
    answers = await asyncio.gather(
        *(_ask(h, p, topology.service, kwargs) for h, p in topology.hosts)
    )
    hosts = ", ".join(f"{h}:{p}" for h, p in topology.hosts)
    if not any(answered for answered, _ in answers):
        first = next(error for _, error in answers)
        raise BrokerError(
            f"{topology.shown}: none of the sentinels ({hosts}) answered ({first}); check"
            " that they run and listen there, and the credentials and TLS settings"
        )
    if all(error for _, error in answers):
        raise BrokerError(
            f"{topology.shown}: the sentinels ({hosts}) monitor no service named"
            f" {topology.service!r}; check the service name in the URL"
            " (SENTINEL MASTERS lists them)"
        )
