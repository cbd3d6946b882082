"""What every broker operation needs: the two clients, the scripts and the key layout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from rediq_core import defaults

from .durability import WaitReplicas
from .keys import NamespaceKeys
from .scripts import Scripts
from .wire import HotLine

__all__ = ["BrokerSettings", "QueueNames", "Session", "sending_slots"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """Protocol bounds (documented in docs/broker.md)."""

    #: A blocked fetch re-checks at least this often, in case a wake token was lost; the
    #: result listener looks up every waiting task this often, in case a message was lost.
    wake_safety_cap_s: float = 30.0
    #: Lost leases (expired unsettled) after which an expiring lease dead-letters the task.
    max_deliveries: int = defaults.MAX_DELIVERIES
    #: How long an ended task's tombstone is kept (one to two windows) for a re-send of
    #: the call that enqueued or settled it.
    replay_window_ms: int = defaults.REPLAY_WINDOW_MS
    dead_letter_ttl_s: int = defaults.DEAD_LETTER_TTL_S
    dead_letter_max: int = defaults.DEAD_LETTER_MAX
    #: Scheduled tasks promoted / expired leases reclaimed per claim step, at most.
    claim_bound: int = 1000
    #: Tasks removed per purge script call.
    purge_batch: int = 1000


class QueueNames:
    """Queue names this broker added to the namespace's queue set, and when.

    The set is control-API metadata; re-adding a name on every enqueue would cost a round
    trip, so a name is re-added only after ``refresh_s`` (in case the set was deleted).
    """

    def __init__(self, refresh_s: float = 60.0) -> None:
        self.refresh_s = refresh_s
        self._added: dict[str, float] = {}

    def stale(self, names: Iterable[str]) -> list[str]:
        now = time.monotonic()
        return sorted(
            n for n in names if now - self._added.get(n, -self.refresh_s) >= self.refresh_s
        )

    def mark(self, names: Iterable[str]) -> None:
        now = time.monotonic()
        self._added.update((n, now) for n in names)

    def discard(self, name: str) -> None:
        """Add ``name`` again at the next enqueue (it was removed from the set)."""
        self._added.pop(name, None)


@dataclass(frozen=True, slots=True)
class Session:
    client: Redis
    blocking: Redis
    scripts: Scripts
    keys: NamespaceKeys
    settings: BrokerSettings
    #: The server's timer tick (1 / hz s): blocking timeouts end on these ticks.
    timer_tick_s: float = 0.1
    queue_names: QueueNames = field(default_factory=QueueNames)
    #: ``WAIT`` after enqueue / settlement batches (``redis_config["wait_replicas"]``).
    enqueue_wait: WaitReplicas | None = None
    settle_wait: WaitReplicas | None = None
    #: (queue, worker id) -> when (monotonic s) the next wait of a fetch that found the
    #: queue without more ready tasks ends: the next fetch waits first instead of
    #: claiming again (see ``leasing.fetch``).
    drained: dict[tuple[str, str], float] = field(default_factory=dict)
    #: Scripts this session saw run (so loaded on the server, unless it restarted since).
    ran: set[str] = field(default_factory=set)
    #: The connection of calls made one at a time (None on a cluster: ``wire.py``).
    line: HotLine | None = None
    #: Enqueue round trips in flight at once (``sending_slots``): a burst of concurrent
    #: enqueues (``asyncio.gather`` over thousands of calls) waits for a slot instead of
    #: running the main pool out, and leaves half of it to everything else.
    sending: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(sending_slots(100))
    )


def sending_slots(pool_size: int) -> int:
    """Enqueue round trips a session lets run at once: half its pool, at least one."""
    return max(1, pool_size // 2)
