"""Redis clients of the broker, built from the app's URL and ``redis_config``.

``redis_config`` passes through to redis-py, except that the broker's own connections
always use ``decode_responses=False`` (payloads and results are bytes; the broker decodes
what it needs), whatever the user set. Blocking commands (fetch, result waits, the
cancellation subscription) use a second pool without a socket timeout, so they neither
exhaust ``max_connections`` of the main pool nor time out while blocked.

Unless ``redis_config`` sets ``retry`` or ``retry_on_error``, a command that meets a
broken connection (the server restarted, a failover) is retried on a fresh one, with
exponential backoff for up to about 2 s. Retrying a script is safe for the protocol: a
script whose reply was lost and that runs again finds the state it left (a duplicate
enqueue is a no-op, a second settlement finds no lease, and a task claimed twice is
orphaned only until its lease expires).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from rediq_core.errors import BrokerError

__all__ = ["MIN_SERVER_VERSION", "check_server_version", "make_clients"]

#: Oldest supported server: BLMOVE, ZRANGE ... and float timeouts of blocking commands.
MIN_SERVER_VERSION = (6, 2, 0)


def _parse_version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def make_clients(url: str, config: Mapping[str, Any]) -> tuple[Redis, Redis]:
    """The main client and the client for blocking commands."""
    options = dict(config)
    options["decode_responses"] = False
    if "retry" not in options and "retry_on_error" not in options:
        options["retry"] = Retry(ExponentialBackoff(cap=0.5, base=0.01), retries=8)
        options["retry_on_error"] = [redis_errors.ConnectionError, redis_errors.TimeoutError]
    main = Redis.from_url(url, **options)
    blocking_options = {k: v for k, v in options.items() if k != "max_connections"}
    blocking_options["socket_timeout"] = None
    blocking = Redis.from_url(url, **blocking_options)
    return main, blocking


async def check_server_version(client: Redis) -> tuple[int, ...]:
    """Raise :class:`BrokerError` when the server is older than supported."""
    info = await client.info("server")
    raw = info.get("redis_version", "0")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    version = _parse_version(text)
    if version < MIN_SERVER_VERSION:
        wanted = ".".join(map(str, MIN_SERVER_VERSION))
        raise BrokerError(
            f"the Redis server reports version {text}, but rediq needs Redis >= {wanted}"
            " (or Valkey >= 7.2); upgrade the server"
        )
    return version
