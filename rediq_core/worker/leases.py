"""Leases held by this worker, and the keeper that renews them from its own thread.

Why a thread: a task that runs blocking code in a coroutine stalls the worker's event
loop. Renewing leases from that loop would let them expire, and another worker would run
the task a second time while the first still runs it. The keeper therefore runs its own
event loop in a daemon thread, with its own broker connection (built by the same broker
plugin), and renews every lease in :class:`LeaseTable` every ``lease_renew_ms`` whatever
the main loop does. It also refreshes the worker registry entry, and it notices a stalled
main loop: when the loop has not answered for ``stall_warning_ms`` it logs a warning that
names the running tasks. Timeouts (``task_timeout``) cannot interrupt blocking code; they
take effect when the code returns to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import defaults, roles
from ..broker import Broker
from ..errors import BrokerUnavailableError
from ..records import Lease, WorkerRecord
from ..roles import Consumer
from .health import BrokerHealth

__all__ = ["LeaseKeeper", "LeaseTable"]

log = logging.getLogger("rediq.worker.leases")


@dataclass(slots=True)
class LeaseTable:
    """Thread-safe ``{queue: {lease: task_name}}`` of leased, unsettled tasks.

    Keyed by lease, not task id: one worker may hold a stale and a newer lease of the same
    task (it stalled past its lease and then leased the task again), and each is renewed,
    stopped and settled on its own.
    """

    _leases: dict[str, dict[Lease, str]] = field(default_factory=dict)
    _running: set[Lease] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, queue: str, lease: Lease, task_name: str) -> None:
        with self._lock:
            self._leases.setdefault(queue, {})[lease] = task_name

    def remove(self, queue: str, lease: Lease) -> None:
        with self._lock:
            self._leases.get(queue, {}).pop(lease, None)
            self._running.discard(lease)

    def mark_running(self, lease: Lease) -> None:
        with self._lock:
            self._running.add(lease)

    def __contains__(self, lease: object) -> bool:
        with self._lock:
            return any(lease in held for held in self._leases.values())

    def __len__(self) -> int:
        with self._lock:
            return sum(len(held) for held in self._leases.values())

    def of_task(self, task_id: str) -> list[Lease]:
        """Every lease of ``task_id`` held here (usually none or one)."""
        with self._lock:
            return [
                lease
                for held in self._leases.values()
                for lease in held
                if lease.task_id == task_id
            ]

    def snapshot(self) -> dict[str, list[Lease]]:
        with self._lock:
            return {q: list(held) for q, held in self._leases.items() if held}

    def running_labels(self) -> list[str]:
        """``name[id]`` of every task whose function has started."""
        with self._lock:
            return [
                f"{name}[{lease.task_id}]"
                for held in self._leases.values()
                for lease, name in held.items()
                if lease in self._running
            ]

    def keep_only(self, kept: set[Lease]) -> None:
        """Forget every lease but ``kept`` (a forced stop hands the others back)."""
        with self._lock:
            for held in self._leases.values():
                for lease in [lease for lease in held if lease not in kept]:
                    del held[lease]
            self._running &= kept


class LeaseKeeper:
    """Renews leases and the registry heartbeat from a thread with its own event loop.

    :param make_broker: builds the keeper's own broker (connections are loop-bound).
    :param on_stop: called *in the main loop* with leases that were lost or whose
        cancellation was requested.
    :param on_round: called *in the main loop* after each renewal round that renewed
        leases (the worker sends its tasks' new progress and log lines then).
    """

    def __init__(
        self,
        *,
        make_broker: Callable[[], Broker],
        table: LeaseTable,
        worker_id: str,
        record: Callable[[], WorkerRecord],
        lease_ms: int,
        renew_ms: int,
        heartbeat_ttl_s: int,
        heartbeat_interval_s: float,
        stall_warning_ms: int,
        main_loop: asyncio.AbstractEventLoop,
        on_stop: Callable[[set[Lease]], None],
        health: BrokerHealth | None = None,
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self._health = health
        self._on_round = on_round
        self._make_broker, self._table, self._worker_id = make_broker, table, worker_id
        self._record, self._lease_ms, self._renew_s = record, lease_ms, renew_ms / 1000
        self._hb_ttl_s, self._hb_interval_s = heartbeat_ttl_s, heartbeat_interval_s
        self._tick_s = min(renew_ms, stall_warning_ms / 2) / 1000
        self._stall_s = stall_warning_ms / 1000
        self._main_loop, self._on_stop = main_loop, on_stop
        self._stopped = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="rediq-lease-keeper", daemon=True)
        self._asked_at: float | None = None  # an unanswered question to the main loop
        self._warned_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopped.set()
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        """Run the keeper's loop; restart it (with backoff) if it fails as a whole, e.g.
        when Redis cannot be reached to connect: leases must never silently stop being
        renewed while the worker runs."""
        pause = defaults.WORKER_RECONNECT_MIN_S
        while not self._stopped.is_set():
            try:
                asyncio.run(self._main())
                return
            except Exception as exc:
                log.error("lease keeper failed (%s); restarting it in %.1f s", exc, pause)
                self._stopped.wait(pause)
                pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)

    async def _main(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        broker = self._make_broker()
        next_renew = next_beat = time.monotonic()
        try:
            await broker.connect()
            while not self._stopped.is_set():
                now = time.monotonic()
                if now >= next_renew:
                    next_renew = now + self._renew_s
                    if self._health is not None and self._health.down:
                        next_beat = now  # a heartbeat per tick notices the reconnection
                    await self._guard(self._renew(roles.consumer(broker)), "renew leases")
                if now >= next_beat:
                    next_beat = now + self._hb_interval_s
                    await self._guard(
                        roles.registry(broker).heartbeat(self._record(), self._hb_ttl_s),
                        "send heartbeat",
                    )
                self._watch_main_loop()
                wait_s = max(0.0, min(next_renew, next_beat, now + self._tick_s) - now)
                self._wake.clear()
                if not self._stopped.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait_s)
        finally:
            await broker.close()

    async def _guard(self, step: Awaitable[object], what: str) -> None:
        """Run ``step``; it returns False when it sent nothing (which proves nothing about
        the connection)."""
        try:
            sent = await step
        except BrokerUnavailableError as exc:
            if self._health is not None:
                self._health.failed(f"lease keeper: {what}", exc)
            else:
                log.warning("lease keeper could not %s: %s", what, exc)
        except Exception as exc:
            log.warning("lease keeper could not %s: %s", what, exc)
        else:
            if self._health is not None and sent is not False:
                self._health.ok()

    async def _renew(self, broker: Consumer) -> bool:
        leases = self._table.snapshot()
        if not leases:
            return False
        stop = await broker.extend_leases(self._worker_id, leases, self._lease_ms)
        if stop and not self._main_loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the main loop closed meanwhile
                self._main_loop.call_soon_threadsafe(self._on_stop, stop)
        if self._on_round is not None and not self._main_loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._main_loop.call_soon_threadsafe(self._on_round)
        return True

    def _answered(self) -> None:
        self._asked_at = None

    def _watch_main_loop(self) -> None:
        """Ask the main loop to answer; warn when a question stays unanswered for
        ``stall_warning_ms`` (the loop is blocked by synchronous code)."""
        now, asked_at = time.monotonic(), self._asked_at
        if asked_at is not None:
            silent_s = now - asked_at
            if silent_s >= self._stall_s and now - self._warned_at >= self._stall_s:
                self._warned_at = now
                log.warning(
                    "event loop blocked for %.1f s (synchronous code in a coroutine?); leases"
                    " stay renewed by the keeper thread. Running: %s. Use"
                    " run_in_current_executor() for blocking calls",
                    silent_s,
                    ", ".join(self._table.running_labels()) or "no task",
                )
            return
        if not self._main_loop.is_closed():
            self._asked_at = now
            with contextlib.suppress(RuntimeError):  # the main loop closed meanwhile
                self._main_loop.call_soon_threadsafe(self._answered)
