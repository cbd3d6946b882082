"""The producer pipeline: the one path by which a message reaches a broker.

Every producer (``enqueue``, ``enqueue_many``, a cron tick, ``rediq cron trigger``, and
whatever produces tasks next) goes through :class:`ProducerPipeline`::

    build -> rediq_before_task_enqueue hooks -> seal (sign) -> size check -> send
          -> rediq_after_task_enqueue hooks

Only the *send* step differs between producers (a :class:`SendStep`): a plain enqueue,
or the broker's compare-and-set fire of a cron tick. Hooks, signing and the size limit
are therefore the same for every message. Nothing else calls a broker's send operations
(``tests/worker/test_producer_pipeline.py`` fails if something does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .cron_records import CronFire, FireResult, ScheduleSpec
from .errors import MessageTooLargeError, SerializationError
from .message import TaskMessage, new_task_id, now_ms
from .records import EnqueueOutcome, TaskState
from .retry import RETRY_HEADER

if TYPE_CHECKING:
    from .app import Rediq
    from .flow import Flow
    from .roles import Cron, Producer
    from .task import TaskCall

__all__ = ["ProducerPipeline", "SendStep", "cron_fire_step", "enqueue_step"]

Answer = TypeVar("Answer")


@dataclass(frozen=True, slots=True)
class SendStep(Generic[Answer]):
    """The pipeline's last step: ``send`` hands sealed messages to a broker and answers
    one ``Answer`` per message; ``stored`` reads from an answer the enqueue outcome the
    after-enqueue hooks get (``accepted`` False when the broker stored nothing: a
    duplicate id, a cron tick another worker fired first, the tick of a paused schedule)."""

    send: Callable[[Sequence[TaskMessage]], Awaitable[Sequence[Answer]]]
    stored: Callable[[TaskMessage, Answer], EnqueueOutcome]


def enqueue_step(broker: Producer) -> SendStep[EnqueueOutcome]:
    """Store the messages (one round trip)."""
    return SendStep(broker.enqueue, lambda _message, outcome: outcome)


def cron_fire_step(
    broker: Cron, schedule: str, tick_ms: int | None, clock: Callable[[], int] = now_ms
) -> SendStep[CronFire]:
    """Fire ``tick_ms`` of ``schedule``: the broker's compare-and-set of the last fired
    tick and the enqueue of its run, in one atomic step (``tick_ms`` None: run now)."""

    async def send(messages: Sequence[TaskMessage]) -> list[CronFire]:
        return [await broker.cron_fire(message, schedule, tick_ms) for message in messages]

    def stored(message: TaskMessage, fire: CronFire) -> EnqueueOutcome:
        if fire.result is FireResult.PAUSED:  # the tick was consumed without a run
            return EnqueueOutcome(message.id, False, TaskState.CANCELLED)
        later = message.eta_ms is not None and message.eta_ms > clock()
        state = TaskState.SCHEDULED if later else TaskState.PENDING
        # ALREADY: another worker enqueued this tick's run, under the same task id
        return EnqueueOutcome(message.id, fire.result is FireResult.FIRED, state)

    return SendStep(send, stored)


class ProducerPipeline:
    """An app's producer pipeline (``app.producer``): its hooks, key and size limit."""

    def __init__(self, app: Rediq) -> None:
        self.app = app

    def build(self, call: TaskCall[Any]) -> TaskMessage:
        """Serialize a call into a message; raise :class:`SerializationError` at once."""
        app = self.app
        options = call.resolved_options
        payload = self._payload(call)
        flow = call.flow(payload)
        return TaskMessage(
            id=call.task_id or new_task_id(),
            name=call.task.name,
            queue=self._route(call, flow),
            payload=payload,
            serializer=app.serializer_name,
            priority=options.priority,
            max_retries=options.retries,
            timeout_ms=options.timeout_ms,
            result_ttl_s=options.result_ttl_s,
            groups=call.group_names,
            headers=_headers(call),
            eta_ms=call.eta_ms,
            delay_ms=call.delay_ms,
            flow=flow,
        )

    def route(self, call: TaskCall[Any]) -> str:
        """The queue (the shard, in a sharded queue) the call goes to; what :meth:`build`
        puts in its message, for a call with an explicit id, a shard key or limits (a
        workflow step's, routed before its message is built)."""
        if self.app.shards.count(call.resolved_options.queue) == 1:
            return call.resolved_options.queue
        return self._route(call, call.flow(self._payload(call)))

    def _payload(self, call: TaskCall[Any]) -> bytes:
        app = self.app
        try:
            return app.serializer.dumps([list(call.args), call.kwargs])
        except Exception as exc:
            raise SerializationError(
                f"the arguments of task {call.task.name!r} cannot be serialized with"
                f" {app.serializer_name!r}: {exc}. Pass values this serializer can carry,"
                " or choose another serializer_name"
            ) from exc

    def _route(self, call: TaskCall[Any], flow: Flow | None) -> str:
        queue = call.resolved_options.queue
        if self.app.shards.count(queue) == 1:
            return queue
        return self.app.shards.route(
            queue, shard_key=call.shard_key(), flow=flow, task_id=call.task_id
        )

    def seal(self, message: TaskMessage) -> TaskMessage:
        """Sign the message (after the hooks added their headers) and check its size."""
        message = self.app.signer.sign(message)
        limit = self.app.max_message_bytes
        if limit:
            size = len(message.payload) + len(message.envelope())
            if size > limit:
                raise MessageTooLargeError(
                    f"task {message.name!r}: the message is {size:,} bytes, over this app's"
                    f" max_message_bytes={limit:,}; pass large data by reference (a key, a"
                    " URL) or raise the limit"
                )
        return message

    async def publish(
        self, messages: Sequence[TaskMessage], step: SendStep[Answer]
    ) -> list[tuple[TaskMessage, Answer]]:
        """Hooks, seal, size check, send, hooks; each message as sent, with its answer.
        Nothing is sent if any message is refused (too large)."""
        hooks = self.app.plugins.events
        for message in messages:
            await hooks.before_task_enqueue(message)
        sealed = [self.seal(message) for message in messages]
        answers = await step.send(sealed)
        for message, answer in zip(sealed, answers, strict=True):
            outcome = step.stored(message, answer)
            await hooks.after_task_enqueue(message, outcome)
        return list(zip(sealed, answers, strict=True))

    async def publish_calls(
        self, broker: Producer, calls: Sequence[TaskCall[Any]]
    ) -> list[tuple[TaskMessage, EnqueueOutcome]]:
        """Publish task calls (``enqueue``, ``enqueue_many``)."""
        return await self.publish([self.build(call) for call in calls], enqueue_step(broker))

    async def publish_tick(
        self,
        broker: Cron,
        spec: ScheduleSpec,
        tick_ms: int | None,
        *,
        eta_ms: int | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> tuple[TaskMessage, CronFire]:
        """Publish the run of a schedule's tick (a worker's scheduler), or with
        ``tick_ms`` None a run now (``rediq cron trigger``)."""
        task_id = spec.task_id(tick_ms) if tick_ms is not None else spec.trigger_id(clock())
        message = spec.message(task_id, tick_ms=tick_ms, eta_ms=eta_ms)
        step = cron_fire_step(broker, spec.name, tick_ms, clock)
        [(sent, fire)] = await self.publish([message], step)
        return sent, fire


def _headers(call: TaskCall[Any]) -> dict[str, str]:
    """The call's headers, plus its own retry policy if it has one (a task's policy is
    known to the worker; a call's travels with the message)."""
    headers = dict(call.headers)
    policy = call.resolved_options.retry
    if policy is not None and policy is not call.task.options.retry:
        headers[RETRY_HEADER] = policy.to_header()
    return headers
