"""Redis clients of the broker, built from the app's URL and ``redis_config``.

``redis_config`` passes through to redis-py, except that the broker's own connections
always use ``decode_responses=False`` (payloads and results are bytes; the broker decodes
what it needs), whatever the user set. Blocking commands (fetch, result waits, the
cancellation subscription) use a second pool without a socket timeout, so they neither
exhaust ``max_connections`` of the main pool nor time out while blocked.

Unless ``redis_config`` sets ``retry`` or ``retry_on_error``, a command that meets a
broken connection (the server restarted, a failover) is re-sent on a fresh one, with
exponential backoff, for at most ``RESEND_BUDGET_S`` after it was first sent. Re-sending
a script is safe for the protocol: every state-changing call carries a reply key named
by a nonce, and a re-send within the replay window (``REPLAY_WINDOW_MS``, three times
the budget) gets the first answer back and changes nothing (docs/broker.md, "Lost
replies").
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
from rediq_core.errors import BrokerError, BrokerOutOfMemoryError, BrokerUnavailableError
from rediq_core.urls import redact_url

__all__ = [
    "MIN_SERVER_VERSION",
    "UNREACHABLE",
    "BoundedRetry",
    "ServerInfo",
    "check_server",
    "make_clients",
    "translate_error",
]

#: The client library's errors that mean "the server could not be reached".
UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


def translate_error(url: str, exc: Exception) -> Exception:
    """rediq's error for a client-library error, naming the URL (password masked), or the
    error itself when rediq has nothing clearer to say."""
    where = redact_url(url)
    if isinstance(exc, UNREACHABLE):
        return BrokerUnavailableError(
            f"Redis at {where} is unreachable ({type(exc).__name__}: {exc}); check that the"
            " server runs and that the URL, network and credentials are right")
    if isinstance(exc, redis_errors.OutOfMemoryError) or (
            isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("OOM")):
        return BrokerOutOfMemoryError(
            f"Redis at {where} is out of memory (maxmemory reached with the noeviction"
            " policy): nothing was stored. Free memory, raise maxmemory, or drain queues")
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

    def __init__(self, *args: Any, budget_s: float = defaults.RESEND_BUDGET_S,
                 **kwargs: Any) -> None:
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


def make_clients(url: str, config: Mapping[str, Any]) -> tuple[Redis, Redis]:
    """The main client and the client for blocking commands."""
    options = dict(config)
    options["decode_responses"] = False
    if "retry" not in options and "retry_on_error" not in options:
        options["retry"] = BoundedRetry(ExponentialBackoff(cap=0.5, base=0.01), retries=8)
        options["retry_on_error"] = [redis_errors.ConnectionError, redis_errors.TimeoutError]
    main = Redis.from_url(url, **options)
    blocking_options = {k: v for k, v in options.items() if k != "max_connections"}
    blocking_options["socket_timeout"] = None
    blocking = Redis.from_url(url, **blocking_options)
    return main, blocking


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
