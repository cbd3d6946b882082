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
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from .. import defaults
from ..broker import Broker, BrokerOptions, Delivery, WorkerRecord
from ..info import WorkerInfo
from ..logs import task_extra
from .config import WorkerConfig, new_worker_id
from .cron import CronScheduler
from .events import EventDispatcher
from .fetcher import Fetcher, LocalQueue, Slots
from .leases import LeaseKeeper, LeaseTable
from .runner import TaskRunner
from .settler import Settler

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["Worker", "run_worker"]

log = logging.getLogger("rediq.worker")
EXIT_OK, EXIT_FORCED = 0, 1


def _share(total: int, parts: int) -> list[int]:
    """Split ``total`` local slots between ``parts`` queues (each gets at least one)."""
    base, extra = divmod(max(total, parts), parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Worker:
    """Consumes ``config``'s queues of ``app`` until asked to stop. ``await run()``."""

    def __init__(self, app: Rediq, config: WorkerConfig | None = None) -> None:
        self.app = app
        self.config = config = config or WorkerConfig()
        self.queues = config.resolved_queues(app.default_options.queue)
        self.id = new_worker_id(config.worker_name)
        self.info = WorkerInfo(
            worker_id=self.id, worker_name=config.worker_name, queues=self.queues,
            task_concurrency=config.task_concurrency, queue_size=config.queue_size,
            executor_pool_name=config.executor_pool_name,
            executor_pool_size=config.executor_pool_size,
        )
        self.leases = LeaseTable()
        self.local: LocalQueue = asyncio.PriorityQueue()
        capacity = config.queue_size + config.task_concurrency
        self.slots = {q: Slots(n) for q, n in zip(self.queues, _share(capacity, len(self.queues)),
                                                  strict=True)}
        self.forced = False
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._burst_check: asyncio.Task[None] | None = None
        self.runner: TaskRunner | None = None

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
            log.warning("%s: shutting down gracefully, finishing %d running and %d prefetched"
                        " task(s); send it again to stop at once", name, running,
                        self.local.qsize())
            self.request_shutdown()
        elif not self.forced:
            log.warning("%s again: cancelling running tasks and handing %d task(s) back",
                        name, len(self.leases))
            self.request_shutdown(force=True)

    def _stop_tasks(self, task_ids: set[str]) -> None:
        """Called for cancellations and lost leases (in the main loop)."""
        for task_id in task_ids:
            if task_id in self.leases and self.runner is not None:
                log.info("stopping task: cancellation requested or lease lost",
                         extra=task_extra(task_id, "?"))
                self.runner.request_stop(task_id)

    # --- run ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until shut down; return the exit status (0, or 1 after a forced stop)."""
        broker = self.app.get_broker()
        await broker.connect()
        executor = self.app.plugins.executor_pool(
            self.config.executor_pool_name, self.config.executor_pool_size
        )
        events = EventDispatcher(self.app, executor)
        settler = Settler(broker, self.id)
        self.runner = TaskRunner(
            app=self.app, worker_name=self.config.worker_name, events=events,
            settler=settler, leases=self.leases, backoff=self.config.backoff,
        )
        await events.worker_event("before_worker_startup", self.info)
        await broker.heartbeat(self._record(), self.config.heartbeat_ttl_s)
        keeper = self._keeper()
        keeper.start()
        self._install_signals()
        try:
            await self._serve(broker)
        finally:
            self._remove_signals()
            await settler.drain()
            await asyncio.to_thread(keeper.stop)
            await self._teardown(broker, events, executor)
        return EXIT_FORCED if self.forced else EXIT_OK

    async def _serve(self, broker: Broker) -> None:
        fetchers = [self._fetcher(broker, q) for q in self.queues]
        fetching = [self._spawn(f.run(), f"fetch:{f.queue}") for f in fetchers]
        runners = [self._spawn(self._run_deliveries(broker), f"runner:{i}")
                   for i in range(self.config.task_concurrency)]
        self._spawn(self._listen_cancellations(broker), "control")
        cron = self._spawn(CronScheduler(self.app, broker, self.queues).run(), "cron")
        log.info("worker %s ready: consuming %s", self.id, ", ".join(self.queues))
        self._maybe_check_burst(broker)
        await self._stop.wait()
        cron.cancel()  # no new ticks once stopping; other workers fire them
        for fetcher in fetchers:
            fetcher.stopped = True
        await _cancel_all(fetching, defaults.WORKER_FORCE_GRACE_S)
        join = asyncio.ensure_future(self.local.join())
        force = asyncio.ensure_future(self._force.wait())
        await asyncio.wait({join, force}, return_when=asyncio.FIRST_COMPLETED)
        join.cancel()
        force.cancel()
        if self._force.is_set():
            await self._hand_back(broker, runners)
        await _cancel_all(runners)

    async def _hand_back(self, broker: Broker, runners: list[asyncio.Task[None]]) -> None:
        for runner in runners:
            runner.cancel()
        _, stubborn = await asyncio.wait(runners, timeout=self.config.force_grace_s)
        if stubborn:
            log.warning("%d task(s) ignored cancellation; handing their leases back anyway",
                        len(stubborn))
        leases = self.leases.snapshot()
        if leases:
            try:
                count = await broker.release(self.id, leases)
                log.warning("handed %d task(s) back to their queues", count)
            except Exception as exc:
                log.error("could not hand tasks back (%s); their leases will expire", exc)
        self.leases.clear()

    async def _teardown(self, broker: Broker, events: EventDispatcher, executor: Executor) -> None:
        await _cancel_all(list(self._background), defaults.WORKER_FORCE_GRACE_S)
        try:
            await broker.unregister_worker(self.id)
        except Exception as exc:
            log.warning("could not unregister worker: %s", exc)
        await events.worker_event("after_worker_shutdown", self.info)
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

    def _fetcher(self, broker: Broker, queue: str) -> Fetcher:
        return Fetcher(
            broker=broker, queue=queue, worker_id=self.id, slots=self.slots[queue],
            lease_ms=self.config.lease_ms, local=self.local, on_leased=self._leased,
        )

    def _leased(self, delivery: Delivery) -> None:
        self.leases.add(delivery.message.queue, delivery.message.id, delivery.message.name)

    async def _run_deliveries(self, broker: Broker) -> None:
        assert self.runner is not None
        while True:
            _, _, delivery = await self.local.get()
            try:
                await self.runner.execute(delivery)
            except Exception:
                m = delivery.message
                log.exception("internal error; handing the task back",
                              extra=task_extra(m.id, m.name))
                self.leases.remove(m.queue, m.id)
                await broker.release(self.id, {m.queue: [m.id]})
            finally:
                self.slots[delivery.message.queue].give()
                self.local.task_done()
                self._maybe_check_burst(broker)

    async def _listen_cancellations(self, broker: Broker) -> None:
        pause = defaults.WORKER_RECONNECT_MIN_S
        while True:
            try:
                async for task_id in broker.cancellations():
                    pause = defaults.WORKER_RECONNECT_MIN_S
                    self._stop_tasks({task_id})
            except Exception as exc:
                log.warning("cancellation listener failed: %s; reconnecting", exc)
            await asyncio.sleep(pause)  # reconnect back-off, not a poll
            pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)

    def _maybe_check_burst(self, broker: Broker) -> None:
        if not self.config.burst or self._stop.is_set():
            return
        idle = all(slots.idle for slots in self.slots.values())
        if idle and (self._burst_check is None or self._burst_check.done()):
            self._burst_check = self._spawn(self._check_burst(broker), "burst")

    async def _check_burst(self, broker: Broker) -> None:
        for queue in self.queues:
            stats = await broker.queue_stats(queue)
            if stats.pending or stats.scheduled:
                return
        if all(slots.idle for slots in self.slots.values()) and not self._stop.is_set():
            log.info("burst mode: the queues are empty, stopping")
            self.request_shutdown()

    def _keeper(self) -> LeaseKeeper:
        options = BrokerOptions(
            url=self.app.redis_url, config=self.app.redis_config, namespace=self.app.namespace
        )
        return LeaseKeeper(
            make_broker=lambda: self.app.plugins.broker(options), table=self.leases,
            worker_id=self.id, record=self._record, lease_ms=self.config.lease_ms,
            renew_ms=self.config.lease_renew_ms, heartbeat_ttl_s=self.config.heartbeat_ttl_s,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            stall_warning_ms=self.config.stall_warning_ms,
            main_loop=asyncio.get_running_loop(), on_stop=self._stop_tasks,
        )

    def _record(self) -> WorkerRecord:
        return WorkerRecord(
            id=self.id, name=self.config.worker_name, queues=self.queues, heartbeat_age_s=0.0,
            info={"host": socket.gethostname(), "pid": os.getpid(),
                  "concurrency": self.config.task_concurrency,
                  "queue_size": self.config.queue_size,
                  "executor": self.config.executor_pool_name,
                  "running": len(self.runner.running) if self.runner else 0},
        )

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
            log.warning("%d internal task(s) did not stop within %s s: %s", len(slow),
                        timeout_s, ", ".join(t.get_name() for t in slow))


def run_worker(app: Rediq, config: WorkerConfig | None = None) -> int:
    """Run a worker in a new event loop; return its exit status."""
    return asyncio.run(Worker(app, config).run())
