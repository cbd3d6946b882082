"""The cron scheduler of a worker: fires the ticks of the app's schedules on its queues.

Every worker serving a schedule's queue sleeps until the schedule's next tick (no polling
tick) and then tries to fire it; the broker's compare-and-set on the schedule's last
fired tick lets exactly one of them enqueue the run. A change of a stored schedule
(another deployment registered a different spec) wakes the scheduler at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import defaults, roles
from ..broker import Broker
from ..cron import Schedule
from ..cron_records import FireResult, MissedPolicy
from ..errors import BrokerUnavailableError, MessageTooLargeError
from ..message import now_ms
from ..roles import Cron, MissingRoleError, Role, supports
from .listening import follow

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["CronScheduler", "latest_tick_at_or_before"]

log = logging.getLogger("rediq.cron")

#: Windows searched backwards for the latest tick at or before a time (see below).
_WINDOWS_MS = (2_000, 60_000, 3_600_000, 86_400_000, 32 * 86_400_000, 366 * 86_400_000)


def latest_tick_at_or_before(schedule: Schedule, at_ms: int) -> int | None:
    """The schedule's latest tick <= ``at_ms`` (within a year), found by widening windows
    so that an every-second schedule costs a handful of steps, not a day of ticks."""
    for window in _WINDOWS_MS:
        tick = schedule.cron.next_after(at_ms - window)
        if tick <= at_ms:
            while (following := schedule.cron.next_after(tick)) <= at_ms:
                tick = following
            return tick
    return None


class CronScheduler:
    """One worker's cron component; ``await run()`` until cancelled.

    :param clock: epoch milliseconds now (injected by tests).
    """

    def __init__(
        self,
        app: Rediq,
        broker: Broker,
        queues: Sequence[str],
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.app = app
        self.broker = broker
        self.clock = clock
        self.schedules = {n: s for n, s in app.schedules.items() if s.spec.queue in queues}
        self.superseded: set[str] = set()
        self.next_ms: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._changed_names: set[str] = set()

    @property
    def _cron(self) -> Cron:
        """The broker's cron role (:class:`~rediq_core.roles.MissingRoleError` without)."""
        return roles.cron(self.broker)

    async def run(self) -> None:
        """Serve the schedules until cancelled; an internal error restarts the component."""
        if self.schedules and not supports(self.broker, Role.CRON):
            missing = MissingRoleError(self.broker, Role.CRON)
            log.error("cron: %s; the schedules of this worker will not fire", missing)
            return
        while self.schedules:
            try:
                await self._serve()
            except NotImplementedError as exc:
                log.error("cron: %s; schedules of this worker will not fire", exc)
                return
            except Exception:
                log.exception("cron: internal error; restarting the scheduler")
                await asyncio.sleep(defaults.WORKER_RECONNECT_MAX_S)

    async def _serve(self) -> None:
        await self._register(initial=True)
        listener = asyncio.create_task(self._listen(), name="rediq-cron-changes")
        try:
            await self._catch_up()
            now = self.clock()
            self.next_ms = {n: s.cron.next_after(now) for n, s in self.schedules.items()}
            log.info(
                "cron: serving %d schedule(s): %s",
                len(self.schedules),
                ", ".join(sorted(self.schedules)),
            )
            await self._loop()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    async def _loop(self) -> None:
        register_at = time.monotonic() + defaults.CRON_REGISTER_INTERVAL_S
        while True:
            due = min(self.next_ms.values())
            delay_s = min((due - self.clock()) / 1000, register_at - time.monotonic())
            if delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay_s)
            if self._changed.is_set():
                self._changed.clear()
                await self._reload()
            now = self.clock()
            for name, tick in sorted(self.next_ms.items(), key=lambda item: item[1]):
                if tick <= now:
                    await self._fire_due(self.schedules[name], tick, now)
            if time.monotonic() >= register_at:
                await self._register(initial=False)
                register_at = time.monotonic() + defaults.CRON_REGISTER_INTERVAL_S

    # --- firing -------------------------------------------------------------------------

    async def _fire_due(self, schedule: Schedule, tick: int, now: int) -> None:
        """Fire the latest due tick (several are due after a stall: they coalesce into one
        run, the skipped ones are logged by the winner), unless it is older than the
        misfire grace; then plan the next tick. A broker error keeps the tick due."""
        if schedule.cron.next_after(tick) <= now:
            tick = latest_tick_at_or_before(schedule, now) or tick
        if tick >= now - defaults.CRON_MISFIRE_GRACE_MS and not await self._fire(schedule, tick):
            return
        self.next_ms[schedule.name] = schedule.cron.next_after(max(tick, now))

    async def _fire(self, schedule: Schedule, tick: int) -> bool:
        """Try to fire one tick; False (after a pause) when the broker failed."""
        if schedule.name in self.superseded:
            return True
        spec = schedule.spec
        # ETA = the tick (plus jitter): a worker whose clock runs ahead cannot start a run
        # early, the run becomes ready at the tick by the broker's clock
        eta = tick + (random.randint(0, spec.jitter_ms) if spec.jitter_ms else 0)
        try:
            message, outcome = await self.app.producer.publish_tick(
                self._cron, spec, tick, eta_ms=eta, clock=self.clock
            )
        except MessageTooLargeError as exc:  # hooks made it larger: no retry would help
            log.error("cron %s: tick %s not sent: %s", spec.name, tick, exc)
            return True
        except Exception as exc:
            log.warning("cron %s: could not fire tick %s (%s); retrying", spec.name, tick, exc)
            await asyncio.sleep(defaults.WORKER_RECONNECT_MAX_S)  # back-off, not a poll
            return False
        if outcome.result is FireResult.FIRED:
            log.info(
                "cron %s: fired tick %s as task %s (%d ms late)",
                spec.name,
                tick,
                message.id,
                self.clock() - tick,
            )
            self._report_skipped(schedule, outcome.previous_tick_ms, tick)
        elif outcome.result is FireResult.PAUSED:
            log.info("cron %s: paused, tick %s passes without a run", spec.name, tick)
        return True

    def _report_skipped(self, schedule: Schedule, previous: int | None, tick: int) -> None:
        if previous is None:
            return
        skipped = schedule.cron.ticks_between(previous, tick, limit=1000)
        if skipped:
            more = "+" if skipped >= 1000 else ""
            log.warning(
                "cron %s: skipped %d%s tick(s) missed while no worker fired them"
                " (last fired tick %s)",
                schedule.name,
                skipped,
                more,
                previous,
            )

    async def _catch_up(self) -> None:
        """Run the latest missed tick of ``run_once`` schedules (once, across workers)."""
        if not any(s.missed is MissedPolicy.RUN_ONCE for s in self.schedules.values()):
            return
        now = self.clock()
        try:
            entries = {e.spec.name: e for e in await self._cron.cron_entries()}
        except Exception as exc:
            log.warning("cron: could not read the last fired ticks: %s", exc)
            return
        for name, schedule in self.schedules.items():
            entry = entries.get(name)
            if schedule.missed is not MissedPolicy.RUN_ONCE or entry is None:
                continue
            last = entry.last_tick_ms
            latest = latest_tick_at_or_before(schedule, now)
            if last is not None and latest is not None and latest > last:
                log.warning(
                    "cron %s: running missed tick %s once (missed='run_once')", name, latest
                )
                await self._fire(schedule, latest)

    # --- registration and changes -------------------------------------------------------

    async def _register(self, *, initial: bool) -> None:
        """Store this worker's specs (at start: the last started deployment wins) or refresh
        them (later: a spec another deployment stored is left alone, and not fired)."""
        by_queue: dict[str, dict[str, str]] = {}
        for name, schedule in self.schedules.items():
            if initial or name not in self.superseded:
                by_queue.setdefault(schedule.spec.queue, {})[name] = schedule.spec.to_json()
        for queue, specs in by_queue.items():
            try:
                registration = await self._cron.cron_register(queue, specs, replace=initial)
            except NotImplementedError:
                raise
            except Exception as exc:
                # An outage is the worker's to report (one line); only other errors warn.
                quiet = isinstance(exc, BrokerUnavailableError)
                log.log(
                    logging.DEBUG if quiet else logging.WARNING,
                    "cron: could not register schedules of queue %s: %s",
                    queue,
                    exc,
                )
                continue
            for name in registration.conflicting:
                self._supersede(name)

    def _supersede(self, name: str) -> None:
        if name not in self.superseded:
            log.warning(
                "cron %s: another deployment stored a different spec; this worker stops firing it",
                name,
            )
            self.superseded.add(name)

    async def _listen(self) -> None:
        await follow("cron change listener", self._cron.cron_changes, self._on_change)

    def _on_change(self, name: str) -> None:
        if name in self.schedules:
            self._changed_names.add(name)
            self._changed.set()

    async def _reload(self) -> None:
        """A stored spec changed: fire only the schedules whose stored spec is ours."""
        names, self._changed_names = self._changed_names, set()
        try:
            entries = {e.spec.name: e for e in await self._cron.cron_entries()}
        except Exception as exc:
            log.warning("cron: could not read changed schedules: %s", exc)
            return
        for name in names:
            entry = entries.get(name)
            ours = self.schedules[name].spec
            if entry is not None and entry.spec != ours:
                self._supersede(name)
            elif (entry is None or entry.spec == ours) and name in self.superseded:
                log.info("cron %s: the stored spec is this worker's again", name)
                self.superseded.discard(name)
