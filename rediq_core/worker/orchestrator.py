"""The worker orchestrator: fetchers, a bounded local queue, N runners, the executor pool,
the event dispatcher, the lease keeper, the control listener and the registry heartbeat.

Shutdown: the first SIGINT/SIGTERM (or :meth:`Worker.request_shutdown`) stops fetching
and lets every running *and prefetched* task finish; the second cancels running tasks and
hands every unfinished lease back to its queue at once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from .. import defaults, roles
from ..broker import Broker
from ..errors import BrokerUnavailableError, ConfigurationError
from ..info import WorkerInfo
from ..logs import task_extra
from ..message import now_ms
from ..plugins.events import Event
from ..records import Delivery, Expired, Lease, WorkerRecord
from ..shards import logical_queue, parse_shard
from ..waits import WaitWindow
from .budget import Budget
from .config import WorkerConfig, default_worker_name, new_worker_id, unconsumed_queues
from .events import EventDispatcher
from .fetcher import Fetcher, LocalQueue
from .health import BrokerHealth
from .leases import LeaseKeeper, LeaseTable
from .listening import follow
from .remote import CountingSettler, listen_stop_requests
from .runner import TaskRunner
from .trails import Trails

if TYPE_CHECKING:
    from ..app import Rediq
    from ..roles import Consumer, Registry

__all__ = ["Worker", "run_worker"]

log = logging.getLogger("rediq.worker")
EXIT_OK, EXIT_FORCED = 0, 1


class Worker:
    """Consumes ``config``'s queues of ``app`` until asked to stop. ``await run()``."""

    def __init__(self, app: Rediq, config: WorkerConfig | None = None) -> None:
        self.app = app
        self.config = config = config or WorkerConfig()
        self.queues = config.resolved_queues(app.default_options.queue)
        #: The broker queues consumed: every shard of a sharded queue (docs/scaling.md).
        self.consumed = app.shards.expand(self.queues)
        self.name = config.worker_name or default_worker_name()
        self.id = new_worker_id(self.name)
        self.info = WorkerInfo(
            worker_id=self.id,
            worker_name=self.name,
            queues=self.queues,
            task_concurrency=config.task_concurrency,
            queue_size=config.queue_size,
            executor_pool_name=config.executor_pool_name,
            executor_pool_size=config.executor_pool_size,
            control=app.control,
        )
        self.leases = LeaseTable()
        self.health = BrokerHealth(app.redis_url)
        self.local: LocalQueue = asyncio.PriorityQueue()
        #: Local slots (running plus prefetched tasks) shared by every consumed queue.
        self.budget = Budget(
            config.queue_size + config.task_concurrency,
            self.consumed,
            config.resolved_queue_order,
            config.queue_weights,
            {q: logical_queue(q) for q in self.consumed},
        )
        self.forced = False
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._burst_check: asyncio.Task[None] | None = None
        self.runner: TaskRunner | None = None
        self.trails: Trails | None = None
        #: Cancellations announced for tasks not (yet) leased here: id -> when announced.
        #: A claim's reply can arrive after the announcement of a cancel that followed it.
        self._announced: dict[str, float] = {}
        self.settler: CountingSettler | None = None
        #: Starts by queue wait over the last minutes; the heartbeat carries the counts.
        self.waits = WaitWindow()
        self.started_at_ms = now_ms()
        #: Set once the worker consumes its queues (``rediq.testing.run_worker`` waits for it).
        self.ready = asyncio.Event()

    # --- control ------------------------------------------------------------------------

    def request_shutdown(self, *, force: bool = False) -> None:
        """Stop gracefully; with ``force`` (or when already stopping) stop at once."""
        if force or self._stop.is_set():
            self.forced = True
            self._force.set()
        self._stop.set()

    def _on_signal(self, name: str) -> None:
        if not self._stop.is_set():
            running = len(self.runner.running) if self.runner else 0
            log.warning(
                "%s: shutting down gracefully, finishing %d running and %d prefetched"
                " task(s); send it again to stop at once",
                name,
                running,
                self.local.qsize(),
            )
            self.request_shutdown()
        elif not self.forced:
            log.warning(
                "%s again: cancelling running tasks and handing %d task(s) back",
                name,
                len(self.leases),
            )
            self.request_shutdown(force=True)

    def _stop_leases(self, leases: set[Lease]) -> None:
        """Leases lost, or whose cancellation was requested (from the keeper; main loop)."""
        for lease in leases:
            if lease in self.leases and self.runner is not None:
                log.info(
                    "stopping task: cancellation requested or lease lost",
                    extra=task_extra(lease.task_id, "?"),
                )
                self.runner.request_stop(lease)

    def _cancel_announced(self, task_id: str) -> None:
        """A cancellation was announced: stop the task if it is leased here, or remember
        the announcement for a lease that is still on its way."""
        held = set(self.leases.of_task(task_id))
        if held:
            self._stop_leases(held)
            return
        now = time.monotonic()
        horizon = now - self.config.lease_ms / 1000
        for old in [i for i, at in self._announced.items() if at < horizon]:
            del self._announced[old]
        self._announced[task_id] = now

    # --- run ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until shut down; return the exit status (0, or 1 after a forced stop)."""
        self._check_serializers()
        broker = self.app.get_broker()
        consumer, registry = roles.consumer(broker), roles.registry(broker)
        if self.config.burst:
            roles.control(broker)  # burst mode reads queue stats: refuse a broker without
        await self._connect(broker)
        executor = self.app.plugins.executor_pool(
            self.config.executor_pool_name, self.config.executor_pool_size
        )
        events = EventDispatcher(self.app, executor)
        settler = self.settler = CountingSettler(consumer, self.id, self.health)
        self.trails = Trails(broker, self.id, self.config.log_bounds)
        self.runner = TaskRunner(
            app=self.app,
            worker_name=self.name,
            events=events,
            settler=settler,
            leases=self.leases,
            backoff=self.config.backoff,
            trails=self.trails,
            waits=self.waits,
        )
        await events.worker_event(Event.BEFORE_WORKER_STARTUP, self.info)
        await registry.heartbeat(self._record(), self.config.heartbeat_ttl_s)
        keeper = self._keeper()
        keeper.start()
        self._install_signals()
        logging.getLogger().addHandler(self.trails.handler)
        try:
            await self._serve(broker)
        finally:
            self._remove_signals()
            await settler.drain()
            logging.getLogger().removeHandler(self.trails.handler)
            await self.trails.close()
            if not self.leases:  # else: leases of code still running stay renewed
                await asyncio.to_thread(keeper.stop)
            await self._teardown(registry, events, executor)
        return EXIT_FORCED if self.forced else EXIT_OK

    def _check_serializers(self) -> None:
        """Refuse to decode unsigned messages with a format that runs code on load,
        unless the app opted out explicitly (then warn)."""
        unsafe = self.app.unsafe_serializers()
        if not unsafe:
            return
        if not self.app.allow_unsigned:
            raise ConfigurationError(
                f"this app accepts {', '.join(unsafe)}, which runs code when decoding, and"
                " verifies no signature: anyone who can write to Redis could run code here."
                " Set Rediq(signing_key=...) (docs/reliability.md), or"
                " Rediq(allow_unsigned=True) for a Redis only trusted parties can write to"
            )
        log.warning(
            "accepting unsigned %s messages (allow_unsigned=True): anyone who can"
            " write to this Redis can run code in this worker",
            ", ".join(unsafe),
        )

    async def _connect(self, broker: Broker) -> None:
        """Connect, waiting for the broker with backoff (under compose or Kubernetes the
        worker may start before Redis); ``fail_fast`` raises at the first failure."""
        pause = defaults.WORKER_RECONNECT_MIN_S
        while True:
            try:
                await broker.connect()
            except BrokerUnavailableError as exc:
                if self.config.fail_fast:
                    raise
                self.health.failed("connect", exc)
                await asyncio.sleep(pause)  # start-up back-off, not a poll
                pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)
                continue
            self.health.ok()
            return

    async def _serve(self, broker: Broker) -> None:
        consumer = roles.consumer(broker)
        await self._find_shards(broker)
        fetchers = [self._fetcher(consumer, q) for q in self.consumed]
        fetching = [self._supervised(f.run, f"fetch:{f.queue}") for f in fetchers]
        runners = [
            self._supervised(lambda: self._run_deliveries(consumer), f"runner:{i}")
            for i in range(self.config.task_concurrency)
        ]
        self._supervised(lambda: self._listen_cancellations(consumer), "control")
        # Ends once a stop was requested (it retries connections by itself).
        self._spawn(
            listen_stop_requests(roles.registry(broker), self.id, self.request_shutdown), "stop"
        )
        cron = self._start_cron(broker)
        counts = Counter(logical_queue(q) for q in self.consumed if parse_shard(q))
        log.info(
            "worker %s ready: consuming %s",
            self.id,
            self.config.describe_queues(self.queues, counts),
        )
        self._warn_unconsumed()
        self.ready.set()
        self._maybe_check_burst()
        await self._stop.wait()
        if cron is not None:
            cron.cancel()  # no new ticks once stopping; other workers fire them
        for fetcher in fetchers:
            fetcher.stopped = True
        await _cancel_all(fetching, defaults.WORKER_FORCE_GRACE_S)
        join = asyncio.ensure_future(self.local.join())
        force = asyncio.ensure_future(self._force.wait())
        limit = self.config.shutdown_timeout_s or None
        await asyncio.wait({join, force}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        join.cancel()
        force.cancel()
        if not join.done() and not self._force.is_set():
            log.warning(
                "graceful shutdown did not finish within %.0f s (--shutdown-timeout):"
                " cancelling running tasks and handing %d task(s) back",
                limit,
                len(self.leases),
            )
            self.request_shutdown(force=True)
        if self._force.is_set():
            await self._hand_back(consumer, runners)
        await _cancel_all(runners)

    async def _hand_back(self, broker: Consumer, runners: list[asyncio.Task[None]]) -> None:
        """Cancel running tasks and hand every lease back, except those of tasks whose
        code still runs (it ignored cancellation, or is blocking code in the executor):
        those stay leased, and renewed, while this process lives, so that no other worker
        runs them at the same time; once it exits they expire and count as lost."""
        for runner in runners:
            runner.cancel()
        await asyncio.wait(runners, timeout=self.config.force_grace_s)
        still_running = set(self.runner.running) if self.runner else set()
        if still_running:
            log.warning(
                "%d task(s) still running code that ignored cancellation; they stay"
                " leased until it ends, then their leases expire",
                len(still_running),
            )
        leases = {
            q: [lease for lease in held if lease not in still_running]
            for q, held in self.leases.snapshot().items()
        }
        self.leases.keep_only(still_running)
        if any(leases.values()):
            try:
                count = await broker.release(self.id, leases)
                log.warning("handed %d task(s) back to their queues", count)
            except Exception as exc:
                log.error("could not hand tasks back (%s); their leases will expire", exc)

    async def _teardown(
        self, broker: Registry, events: EventDispatcher, executor: Executor
    ) -> None:
        await _cancel_all(list(self._background), defaults.WORKER_FORCE_GRACE_S)
        try:
            await broker.unregister_worker(self.id)
        except Exception as exc:
            log.warning("could not unregister worker: %s", exc)
        await events.worker_event(Event.AFTER_WORKER_SHUTDOWN, self.info)
        if self.forced:
            executor.shutdown(wait=False, cancel_futures=True)
        else:
            await asyncio.to_thread(executor.shutdown, True)
        await self.app.close()
        log.info("worker %s stopped%s", self.id, " (forced)" if self.forced else "")

    # --- components ---------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"rediq-{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _find_shards(self, broker: Broker) -> None:
        """Consume, besides the shards this app declares, every shard of a consumed queue
        the broker already holds (left by producers with another number of shards), so
        that none is stranded."""
        if not roles.supports(broker, roles.Role.CONTROL):
            return
        try:
            known = await roles.control(broker).queues()
        except BrokerUnavailableError:
            return  # the declared shards are consumed all the same
        consumed = set(self.queues)
        for name in known:
            shard = parse_shard(name)
            if shard is not None and shard.queue in consumed and name not in self.consumed:
                self.consumed += (name,)
                self.budget.add(name, shard.queue)
                log.info("worker %s: also consuming shard %s, found in the broker", self.id, name)

    def _start_cron(self, broker: Broker) -> asyncio.Task[None] | None:
        """The cron scheduler, when a consumed queue has schedules (the cron code is not
        even imported by a worker without any)."""
        if not any(s.spec.queue in self.consumed for s in self.app.schedules.values()):
            return None
        from .cron import CronScheduler

        scheduler = CronScheduler(self.app, broker, self.consumed)
        return self._supervised(scheduler.run, "cron", may_end=True)  # ends without the role

    def _supervised(
        self, run: Callable[[], Coroutine[Any, Any, None]], name: str, *, may_end: bool = False
    ) -> asyncio.Task[None]:
        """Run an internal component for the worker's lifetime: if it fails (or ends,
        unless ``may_end``: it had nothing to do), log it loudly and start it again with
        backoff (never leave the worker without it)."""

        async def supervise() -> None:
            pause = defaults.WORKER_RECONNECT_MIN_S
            while True:
                started = time.monotonic()
                try:
                    await run()
                    if may_end:
                        return
                    log.error(
                        "internal component %s ended unexpectedly; restarting it in %.1f s",
                        name,
                        pause,
                    )
                except Exception:
                    log.exception(
                        "internal component %s failed; restarting it in %.1f s", name, pause
                    )
                if time.monotonic() - started > defaults.WORKER_RECONNECT_MAX_S:
                    pause = defaults.WORKER_RECONNECT_MIN_S  # it had been running fine
                await asyncio.sleep(pause)  # restart back-off, not a poll
                pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)

        return self._spawn(supervise(), name)

    def _warn_unconsumed(self) -> None:
        """One line per queue that tasks (or schedules) of the app go to and this worker
        does not consume: their enqueues would wait for another worker."""
        for queue, tasks in sorted(unconsumed_queues(self.app, self.queues).items()):
            log.warning(
                "%s %s to queue %r, which this worker does not consume (add --queue-name %s)",
                f"tasks {', '.join(tasks)}" if len(tasks) > 1 else f"task {tasks[0]}",
                "go" if len(tasks) > 1 else "goes",
                queue,
                queue,
            )

    def _fetcher(self, broker: Consumer, queue: str) -> Fetcher:
        return Fetcher(
            broker=broker,
            queue=queue,
            worker_id=self.id,
            budget=self.budget,
            lease_ms=self.config.lease_ms,
            local=self.local,
            on_leased=self._leased,
            health=self.health,
            on_expired=self._expired,
        )

    async def _expired(self, expired: Expired, queue: str) -> None:
        try:
            await self.app.plugins.events.after_task_expired(
                expired.task_id, expired.name, queue, expired.reason
            )
        except Exception:
            log.exception("a rediq_after_task_expired hook failed")

    def _leased(self, delivery: Delivery) -> None:
        m = delivery.message
        self.leases.add(m.queue, delivery.lease, m.name)
        if self._announced.pop(m.id, None) is not None and self.runner is not None:
            self.runner.request_stop(delivery.lease)

    async def _run_deliveries(self, broker: Consumer) -> None:
        assert self.runner is not None
        while True:
            _, _, delivery = await self.local.get()
            try:
                await self.runner.execute(delivery)
            except Exception:
                await self._internal_error(broker, delivery)
            finally:
                self.budget.give()
                self.local.task_done()
                self._maybe_check_burst()

    async def _internal_error(self, broker: Consumer, delivery: Delivery) -> None:
        """The runner failed on a delivery (a bug, not the task's): stop renewing its lease
        and hand it back; if that fails too, the lease expires and the task runs again."""
        m = delivery.message
        log.exception("internal error; handing the task back", extra=task_extra(m.id, m.name))
        self.leases.remove(m.queue, delivery.lease)
        try:
            await broker.release(self.id, {m.queue: [delivery.lease]})
        except Exception as exc:
            log.error(
                "could not hand the task back (%s); it runs again once its lease expires (%d ms)",
                exc,
                self.config.lease_ms,
                extra=task_extra(m.id, m.name),
            )

    async def _listen_cancellations(self, broker: Consumer) -> None:
        await follow(
            "cancellation listener",
            broker.cancellations,
            self._cancel_announced,
            health=self.health,
        )

    def _maybe_check_burst(self) -> None:
        if not self.config.burst or self._stop.is_set():
            return
        if self.budget.idle and (self._burst_check is None or self._burst_check.done()):
            self._burst_check = self._spawn(self._check_burst(), "burst")

    async def _check_burst(self) -> None:
        """Burst mode reads the queues' counts: the control role (``queue_stats``)."""
        control = roles.control(self.app.get_broker())
        for queue in self.consumed:
            stats = await control.queue_stats(queue)
            if stats.pending or stats.scheduled:
                return
        if self.budget.idle and not self._stop.is_set():
            log.info("burst mode: the queues are empty, stopping")
            self.request_shutdown()

    def _keeper(self) -> LeaseKeeper:
        options = self.app.broker_options
        return LeaseKeeper(
            make_broker=lambda: self.app.plugins.broker(options),
            table=self.leases,
            worker_id=self.id,
            record=self._record,
            lease_ms=self.config.lease_ms,
            renew_ms=self.config.lease_renew_ms,
            heartbeat_ttl_s=self.config.heartbeat_ttl_s,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            stall_warning_ms=self.config.stall_warning_ms,
            main_loop=asyncio.get_running_loop(),
            on_stop=self._stop_leases,
            health=self.health,
            on_round=self.trails.round if self.trails is not None else None,
        )

    def _record(self) -> WorkerRecord:
        return WorkerRecord(
            id=self.id,
            name=self.name,
            queues=self.queues,
            heartbeat_age_s=0.0,
            info={
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": self.config.task_concurrency,
                "queue_size": self.config.queue_size,
                "executor": self.config.executor_pool_name,
                "running": len(self.runner.running) if self.runner else 0,
                **self._status(),
            },
        )

    def _status(self) -> dict[str, Any]:
        """Registry fields for the control API (read from the lease keeper's thread)."""
        from .. import __version__

        running = self.runner.running.copy() if self.runner else {}
        settler = self.settler
        return {
            "running_ids": sorted(lease.task_id for lease in running),
            "started_at_ms": self.started_at_ms,
            "processed": settler.processed if settler else 0,
            "failed": settler.failed if settler else 0,
            "version": __version__,
            "wait_counts": self.waits.counts(time.time()),
        }

    def _install_signals(self) -> None:
        if self.config.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig.name)
            loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)

    def _remove_signals(self) -> None:
        if self.config.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
                loop.remove_signal_handler(sig)


def _dump_tasks() -> None:
    """SIGUSR1: log where every coroutine of the worker is waiting (for diagnosis)."""
    buffer = io.StringIO()
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=8)
        if task.get_name().startswith("rediq-runner:") and len(frames) <= 1:
            continue  # an idle runner waiting for a delivery
        task.print_stack(limit=8, file=buffer)
    log.warning("SIGUSR1: %d asyncio tasks\n%s", len(asyncio.all_tasks()), buffer.getvalue())


async def _cancel_all(tasks: list[asyncio.Task[Any]], timeout_s: float | None = None) -> None:
    """Cancel and wait, at most ``timeout_s`` (a broker call may be slow to cancel)."""
    for task in tasks:
        task.cancel()
    if tasks:
        _, slow = await asyncio.wait(tasks, timeout=timeout_s)
        if slow:
            log.warning(
                "%d internal task(s) did not stop within %s s: %s",
                len(slow),
                timeout_s,
                ", ".join(t.get_name() for t in slow),
            )


def run_worker(app: Rediq, config: WorkerConfig | None = None) -> int:
    """Run a worker in a new event loop; return its exit status."""
    return asyncio.run(Worker(app, config).run())
