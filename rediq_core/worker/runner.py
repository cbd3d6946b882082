"""Execute one delivery: decode, bind, fire events, run with its timeout, settle.

Bad input (unknown task name, a serializer the app does not accept, a payload that does
not decode, arguments that do not bind) is settled as a final failure with a clear
reason and logged; no event fires for it, and the worker goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import context
from ..broker import Delivery, Lease, Settlement, TaskError
from ..errors import RediqError, SerializationError, TaskCancelledError
from ..info import TaskInfo
from ..logs import task_extra
from ..plugins.events import Event
from ..retry import RETRY_HEADER, Retry, RetryPolicy
from ..shards import logical_queue
from ..signing import InvalidSignatureError
from ..waits import WaitWindow, queue_wait_s
from ..workflow_records import StepLink
from ..workflows import feed_value

if TYPE_CHECKING:
    from ..app import Rediq
    from ..serializer import Serializer
    from ..task import TaskDefinition
    from .backoff import Backoff
    from .events import EventDispatcher
    from .leases import LeaseTable
    from .settler import Settler
    from .trails import Trails

__all__ = ["InvalidTaskError", "TaskRunner", "task_error"]

log = logging.getLogger("rediq.worker")


class InvalidTaskError(RediqError):
    """A delivered task cannot run at all (its data is unusable); it is dead-lettered."""


def task_error(exc: BaseException) -> TaskError:
    kind = type(exc)
    return TaskError(
        type=f"{kind.__module__}.{kind.__qualname__}",
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    definition: TaskDefinition[Any, Any]
    serializer: Serializer
    info: TaskInfo
    #: The call's or the task's policy; None: every Exception, with the worker's backoff.
    policy: RetryPolicy | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Any = None
    error: BaseException | None = None
    retryable: bool = True


class TaskRunner:
    """Runs deliveries; tracks running attempts by lease so they can be cancelled."""

    def __init__(
        self,
        *,
        app: Rediq,
        worker_name: str,
        events: EventDispatcher,
        settler: Settler,
        leases: LeaseTable,
        backoff: Backoff,
        trails: Trails | None = None,
        waits: WaitWindow | None = None,
    ) -> None:
        self.app, self.worker_name, self.events = app, worker_name, events
        self.settler, self.leases, self.backoff = settler, leases, backoff
        self.trails = trails
        #: Starts by queue wait, for the heartbeat (the autoscaling signal's histogram).
        self.waits = waits
        self.running: dict[Lease, asyncio.Task[Any]] = {}
        self.stop_requested: set[Lease] = set()

    def request_stop(self, lease: Lease) -> None:
        """Cancel a running attempt, or mark a prefetched task to be settled unrun."""
        self.stop_requested.add(lease)
        attempt = self.running.get(lease)
        if attempt is not None:
            attempt.cancel("cancellation requested")

    async def execute(self, delivery: Delivery) -> None:
        message, lease = delivery.message, delivery.lease
        try:
            try:
                prepared = self._prepare(delivery, await self._parent_result(delivery))
            except InvalidTaskError as exc:
                await self._reject(delivery, exc)
                return
            if lease in self.stop_requested:
                error = TaskCancelledError(f"task {message.id} was cancelled before it started")
                await self._settle(delivery, self._settlement(delivery, error=task_error(error)))
                return
            if self.waits is not None and not delivery.retried:
                now_s = time.time()
                wait_s = queue_wait_s(prepared.info, now_s)
                self.waits.record(logical_queue(message.queue), wait_s, now_s)
            await self.events.task_event(
                Event.BEFORE_TASK_RETRY if delivery.retried else Event.BEFORE_TASK_START,
                prepared.info,
            )
            started = time.perf_counter()
            outcome = await self._attempt(prepared, lease)
            ran_s = time.perf_counter() - started
            await self.events.attempt_ended(prepared.info, ran_s, outcome.error)
            await self._finish(delivery, prepared, outcome, round(ran_s * 1000))
        finally:
            self.stop_requested.discard(lease)
            if self.trails is not None:
                self.trails.discard(lease)

    @staticmethod
    def _settlement(delivery: Delivery, **how: Any) -> Settlement:
        m = delivery.message
        return Settlement(m.id, m.queue, delivery=delivery.deliveries, **how)

    async def _parent_result(self, delivery: Delivery) -> tuple[Any, ...]:
        """A workflow step's first argument (its parents' results), or nothing. Read
        before the task starts; a result that is gone makes the step unable to run."""
        try:
            link = StepLink.of(delivery.message)
        except ValueError as exc:
            raise InvalidTaskError(str(exc)) from None
        if link is None or link.feed is None:
            return ()
        try:
            return (await feed_value(self.app, link),)
        except LookupError as exc:
            raise InvalidTaskError(f"its parents' results cannot be read: {exc}") from None

    def _prepare(self, delivery: Delivery, parent: tuple[Any, ...] = ()) -> Prepared:
        message = delivery.message
        if self.app.signer.verifies:
            try:
                self.app.signer.verify(message)
            except InvalidSignatureError as exc:
                raise InvalidTaskError(f"rejected unread: {exc}") from None
        definition = self.app.tasks.get(message.name)
        if definition is None:
            known = ", ".join(sorted(self.app.tasks)) or "none"
            raise InvalidTaskError(
                f"unknown task name {message.name!r} (this app registers: {known})"
            )
        try:
            serializer = self.app.serializer_for(message.serializer)
        except RediqError as exc:
            raise InvalidTaskError(str(exc)) from None
        try:
            decoded = serializer.loads(message.payload)
        except Exception as exc:
            raise InvalidTaskError(
                f"payload does not deserialize with {message.serializer!r}:"
                f" {type(exc).__name__}: {exc}"
            ) from None
        if not (
            isinstance(decoded, list | tuple)
            and len(decoded) == 2
            and isinstance(decoded[0], list | tuple)
            and isinstance(decoded[1], dict)
        ):
            raise InvalidTaskError("payload is not a pair [args, kwargs]")
        args, kwargs = (*parent, *decoded[0]), dict(decoded[1])
        try:
            definition.check_arguments(args, kwargs)
        except TypeError as exc:
            raise InvalidTaskError(
                f"arguments do not match {message.name}{definition.signature}: {exc}"
            ) from None
        return Prepared(
            definition,
            serializer,
            self._info(delivery, args, kwargs),
            _policy(definition, message.headers),
        )

    def _info(self, delivery: Delivery, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskInfo:
        m = delivery.message
        return TaskInfo(
            task_id=m.id,
            task_name=m.name,
            task_queue=m.queue,
            task_priority=m.priority,
            task_retries=m.max_retries,
            task_timeout=m.timeout_ms,
            args=args,
            kwargs=kwargs,
            groups=m.groups,
            headers=dict(m.headers),
            retried=delivery.retried,
            deliveries=delivery.deliveries,
            enqueued_at_ms=m.enqueued_at_ms,
            eta_ms=m.eta_ms,
            delay_ms=m.delay_ms,
            worker_name=self.worker_name,
        )

    async def _attempt(self, prepared: Prepared, lease: Lease) -> Outcome:
        task_id = prepared.info.task_id
        trail = self.trails.open(lease, prepared.info) if self.trails is not None else None
        with context.using(executor=self.events.executor, task=prepared.info, trail=trail):
            self.leases.mark_running(lease)
            attempt = asyncio.create_task(_call(prepared), name=f"rediq:{prepared.info.task_name}")
            self.running[lease] = attempt
            try:
                return Outcome(result=await attempt)
            except asyncio.CancelledError as exc:
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise  # the worker is being stopped: the lease is handed back
                if lease in self.stop_requested:
                    return Outcome(
                        error=TaskCancelledError(f"task {task_id} was cancelled"), retryable=False
                    )
                return Outcome(error=exc)
            except Exception as exc:
                return Outcome(error=exc)
            finally:
                self.running.pop(lease, None)

    async def _finish(
        self, delivery: Delivery, prepared: Prepared, outcome: Outcome, run_ms: int | None = None
    ) -> None:
        """Settle the attempt's outcome; ``run_ms``: how long it ran (settled with it: the
        queue's run-time history)."""
        m, info = delivery.message, prepared.info
        if outcome.error is None:
            try:
                payload = prepared.serializer.dumps(outcome.result)
            except Exception as exc:
                error: BaseException = SerializationError(
                    f"the return value of {m.name!r} cannot be serialized with"
                    f" {m.serializer!r}: {exc}"
                )
                outcome = Outcome(error=error, retryable=False)
            else:
                ran = self._settlement(delivery, result=payload, run_ms=run_ms)
                if await self._settle(delivery, ran):
                    log.debug("succeeded", extra=task_extra(m.id, m.name))
                    await self.events.task_event(
                        Event.AFTER_TASK_SUCCESS, info, result=outcome.result
                    )
                return
        assert outcome.error is not None
        error = outcome.error
        retryable = outcome.retryable and (
            prepared.policy is None or prepared.policy.retries_error(error)
        )
        if retryable and delivery.retried < m.max_retries:
            delay = self._retry_delay_ms(prepared.policy, delivery.retried, error)
            retry = self._settlement(
                delivery, error=task_error(error), retry_delay_ms=delay, run_ms=run_ms
            )
            if await self._settle(delivery, retry):
                log.warning(
                    "attempt %d of %d failed (%s: %s); retrying in %d ms",
                    delivery.retried + 1,
                    m.max_retries + 1,
                    type(error).__name__,
                    error,
                    delay,
                    extra=task_extra(m.id, m.name),
                )
            return
        final = self._settlement(delivery, error=task_error(error), run_ms=run_ms)
        if await self._settle(delivery, final):
            log.error(
                "failed: %s: %s",
                type(error).__name__,
                error,
                exc_info=None if isinstance(error, TaskCancelledError) else error,
                extra=task_extra(m.id, m.name),
            )
            await self.events.task_event(Event.AFTER_TASK_FAILURE, info, exception=error)

    def _retry_delay_ms(
        self, policy: RetryPolicy | None, retried: int, error: BaseException
    ) -> int:
        if isinstance(error, Retry) and error.delay_ms is not None:
            return error.delay_ms
        if policy is None:
            return self.backoff.delay_ms(retried)
        return policy.delay_ms(
            retried,
            base_ms=self.backoff.base_ms,
            cap_ms=self.backoff.cap_ms,
            jitter=0.5 if self.backoff.jitter else 0.0,
        )

    async def _settle(self, delivery: Delivery, settlement: Settlement) -> bool:
        m = delivery.message
        # a quiet attempt (the usual one) awaits nothing here
        if self.trails is not None and (trail := self.trails.take(delivery.lease)) is not None:
            await self.trails.finish(trail)
            settlement = dataclasses.replace(settlement, reported=True)
        self.leases.remove(m.queue, delivery.lease)
        held = await self.settler.settle(settlement)
        if not held:
            log.warning(
                "lease lost before the task was settled; the outcome is discarded"
                " (the task runs again elsewhere or was cancelled)",
                extra=task_extra(m.id, m.name),
            )
        return held

    async def _reject(self, delivery: Delivery, exc: InvalidTaskError) -> None:
        m = delivery.message
        log.error("dead-lettered, the task cannot run: %s", exc, extra=task_extra(m.id, m.name))
        await self._settle(delivery, self._settlement(delivery, error=task_error(exc)))


def _policy(definition: TaskDefinition[Any, Any], headers: dict[str, str]) -> RetryPolicy | None:
    """The call's own policy (from its header) or else the task's."""
    text = headers.get(RETRY_HEADER)
    if text is None:
        return definition.options.retry
    try:
        return RetryPolicy.from_header(text)
    except Exception as exc:
        raise InvalidTaskError(f"unreadable {RETRY_HEADER} header: {exc}") from None


async def _call(prepared: Prepared) -> Any:
    info = prepared.info
    timeout_ms = info.task_timeout
    if not timeout_ms:  # no timeout: no timer to set up and cancel per task
        return await prepared.definition.fn(*info.args, **info.kwargs)
    scope = asyncio.timeout(timeout_ms / 1000)
    try:
        async with scope:
            return await prepared.definition.fn(*info.args, **info.kwargs)
    except TimeoutError:
        if scope.expired():
            raise TimeoutError(
                f"task {info.task_name!r} exceeded its timeout of {timeout_ms} ms"
            ) from None
        raise
