"""Redis clients of the broker, built from the app's URL and ``redis_config``.

``redis_config`` passes through to redis-py, except that the broker's own connections
always use ``decode_responses=False`` (payloads and results are bytes; the broker decodes
what it needs), whatever the user set. Blocking commands (fetch, result waits, the
cancellation subscription) use a second pool without a socket timeout, so they neither
exhaust ``max_connections`` of the main pool nor time out while blocked.

Unless ``redis_config`` sets ``retry`` or ``retry_on_error``, a command that meets a
broken connection (the server restarted, a failover) is re-sent on a fresh one, with
exponential backoff, for at most ``RESEND_BUDGET_S`` after it was first sent. Re-sending
a script is safe for the protocol: a re-sent call finds the state its first send left
(the task's record, or its tombstone for the replay window, ``REPLAY_WINDOW_MS``, three
times the budget) and answers as the first send did, changing nothing (docs/broker.md,
"Lost replies").
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from rediq_core import defaults
from rediq_core.errors import (
    BrokerError,
    BrokerOutOfMemoryError,
    BrokerPoolExhaustedError,
    BrokerUnavailableError,
)

from .packing import fast_packing
from .topology import Kind, mask_url, parse_url

__all__ = [
    "BROKER_CONFIG_KEYS",
    "MIN_SERVER_VERSION",
    "UNREACHABLE",
    "BoundedRetry",
    "ServerInfo",
    "blocking_options",
    "check_server",
    "client_options",
    "default_retry",
    "explain_connect_failure",
    "make_clients",
    "pool_exhausted",
    "pool_size",
    "translate_error",
]

#: The client library's errors that mean "the server could not be reached".
UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


def pool_size(client: Redis) -> int:
    """How many connections the client's main pool may hold (per node on a cluster):
    redis-py's ``max_connections``, 100 unless ``redis_config`` sets it."""
    pool = getattr(client, "connection_pool", None)
    size = getattr(pool, "max_connections", None)
    if size is None:  # a cluster client: every node's pool has the same bound
        size = getattr(client, "connection_kwargs", {}).get("max_connections")
    return int(size) if size else 100


def pool_exhausted(exc: BaseException) -> bool:
    """Whether ``exc`` says the client's own pool is full (``max_connections``): nothing
    is wrong with the server, and re-sending on a fresh connection cannot help."""
    error = getattr(redis_errors, "MaxConnectionsError", None)  # redis-py >= 6
    if error is not None and isinstance(exc, error):
        return True
    return isinstance(exc, redis_errors.ConnectionError) and str(exc) == "Too many connections"


def translate_error(url: str, exc: Exception) -> Exception:
    """rediq's error for a client-library error, naming the URL (password masked), or the
    error itself when rediq has nothing clearer to say."""
    if isinstance(exc, BrokerError):  # already rediq's own, with its own advice
        return exc
    where = mask_url(url)
    if pool_exhausted(exc):  # a ConnectionError to the client library, but a local one
        return BrokerPoolExhaustedError(
            f"the connection pool for Redis at {where} is exhausted ({exc}): this process"
            " runs more Redis commands at once than redis_config's max_connections allows"
            " (per node on a cluster); raise max_connections in redis_config, or run fewer"
            " operations concurrently"
        )
    if isinstance(exc, UNREACHABLE):
        return BrokerUnavailableError(
            f"Redis at {where} is unreachable ({type(exc).__name__}: {exc}); check that the"
            " server runs and that the URL, network and credentials are right"
        )
    if isinstance(exc, redis_errors.OutOfMemoryError) or (
        isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("OOM")
    ):
        return BrokerOutOfMemoryError(
            f"Redis at {where} is out of memory (maxmemory reached with the noeviction"
            " policy): nothing was stored. Free memory, raise maxmemory, or drain queues"
        )
    return exc


T = TypeVar("T")

#: Oldest supported server: BLMOVE, ZRANGE ... and float timeouts of blocking commands.
MIN_SERVER_VERSION = (6, 2, 0)


def _parse_version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class BoundedRetry(Retry):
    """redis-py's retry, but never re-sending a command more than ``budget_s`` after its
    first send: past that, the replay memory of a script call may have expired."""

    def __init__(
        self, *args: Any, budget_s: float = defaults.RESEND_BUDGET_S, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.budget_s = budget_s

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        started = time.monotonic()

        def retryable(error: Exception) -> bool:
            if time.monotonic() - started > self.budget_s:
                return False
            return is_retryable(error) if is_retryable is not None else True

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


#: Settings in ``redis_config`` that are the broker's own, not redis-py's.
BROKER_CONFIG_KEYS = ("wait_replicas", "wait_timeout_ms", "sentinel_kwargs")


def default_retry(kind: Kind) -> BoundedRetry:
    """Re-send on a fresh connection within ``RESEND_BUDGET_S``. A failover (Sentinel or
    Cluster) takes seconds, so those topologies keep trying for the whole budget."""
    retries = 8 if kind is Kind.STANDALONE else 64
    return BoundedRetry(ExponentialBackoff(cap=0.5, base=0.01), retries=retries)


def client_options(config: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    """redis-py options from ``redis_config``: without the broker's own settings, with
    ``decode_responses=False`` and (unless configured) the bounded re-send policy."""
    options = {k: v for k, v in config.items() if k not in BROKER_CONFIG_KEYS}
    options["decode_responses"] = False
    if kind is not Kind.CLUSTER and "retry" not in options and "retry_on_error" not in options:
        options["retry"] = default_retry(kind)
        options["retry_on_error"] = [redis_errors.ConnectionError, redis_errors.TimeoutError]
    return options


def blocking_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of the client for blocking commands: no pool bound, no socket timeout."""
    found = {k: v for k, v in options.items() if k != "max_connections"}
    found["socket_timeout"] = None
    return found


def make_clients(url: str, config: Mapping[str, Any]) -> tuple[Redis, Redis]:
    """The main client and the client for blocking commands, for any URL of
    :data:`~rediq_redis.topology.SCHEMES`."""
    topology = parse_url(url)
    options = client_options(config, topology.kind)
    if topology.kind is Kind.CLUSTER:
        from .cluster import make_cluster_clients

        return make_cluster_clients(topology, options)
    if topology.kind is Kind.SENTINEL:
        from .sentinel import make_sentinel_clients

        return make_sentinel_clients(topology, options, config.get("sentinel_kwargs"))
    main = Redis.from_url(url, **options)
    blocking = Redis.from_url(url, **blocking_options(options))
    for client in (main, blocking):
        pool = client.connection_pool
        pool.connection_class = fast_packing(pool.connection_class)
    return main, blocking


def _reasons(exc: BaseException) -> str:
    """The messages of ``exc`` and of the errors that caused it, once each."""
    found: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < 4:
        text = str(seen).strip()
        if text and not any(text[-30:] in earlier for earlier in found):
            found.append(text)
        seen = seen.__cause__ or seen.__context__
    return "; ".join(found) or type(exc).__name__


def explain_connect_failure(url: str, exc: Exception) -> BrokerError:
    """A one-line error naming the URL (password masked) and what to check."""
    shown = mask_url(url)
    reason = _reasons(exc)
    if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
        return BrokerError(
            f"{shown}: TLS handshake failed, the server's certificate is not trusted"
            f" ({reason}); check redis_config ssl_ca_certs (the CA that signed it) and"
            " ssl_check_hostname (the name in the URL must match the certificate)"
        )
    if "SSL" in reason or "TLS" in reason or "tls" in reason:
        return BrokerError(
            f"{shown}: TLS connection failed ({reason}); check the scheme"
            " (rediss:// for TLS) and ssl_certfile / ssl_keyfile"
        )
    return BrokerUnavailableError(
        f"{shown}: cannot connect, Redis is unreachable ({reason}); check that the server"
        " (or the cluster nodes) run and listen there, and the credentials"
    )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: tuple[int, ...]
    #: How often the server checks the timeouts of blocked commands (1 / hz s): a blocking
    #: command's timeout ends on one of these ticks, up to this much late.
    timer_tick_s: float


async def check_server(client: Redis) -> ServerInfo:
    """What the broker needs to know of the server; :class:`BrokerError` when it is older
    than supported."""
    info = await client.info("server")
    raw = info.get("redis_version", "0")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    version = _parse_version(text)
    try:
        hz = max(1, int(info.get("hz", 10)))
    except (TypeError, ValueError):
        hz = 10
    if version < MIN_SERVER_VERSION:
        wanted = ".".join(map(str, MIN_SERVER_VERSION))
        raise BrokerError(
            f"the Redis server reports version {text}, but rediq needs Redis >= {wanted}"
            " (or Valkey >= 7.2); upgrade the server"
        )
    return ServerInfo(version=version, timer_tick_s=1 / hz)
