"""The application object: task and event registry, serializer, broker and enqueueing."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, Unpack, overload

from . import defaults, roles
from .broker import Broker, BrokerOptions, TaskRecord, TaskState
from .canvas import plan
from .control import Control
from .cron import CronControl, Schedule, make_schedule
from .errors import (
    ConfigurationError,
    TaskNotFoundError,
    TaskRegistrationError,
    UnknownNameError,
)
from .flow import FlowArgs, check_flow_args
from .handle import TaskHandle, raise_for_record
from .message import TaskMessage
from .options import TaskOptions, check_name, milliseconds, seconds
from .plugins import PluginHost, make_plugin_host
from .plugins.events import Event
from .producer import ProducerPipeline
from .retry import RetryPolicy
from .serializer import Serializer
from .shards import QueueShards, QueueSpec, check_shards, parse_shards_setting
from .signing import MessageSigner
from .sync import SyncRunner, refuse_in_event_loop
from .task import TaskCall, TaskDefinition, refuse_partial
from .task_events import EventSince, TaskEvent, check_length, follow_events, start_cursors

if TYPE_CHECKING:
    from .canvas import Step
    from .workflows import WorkflowHandle

__all__ = ["EVENT_NAMES", "Rediq"]

P = ParamSpec("P")
R = TypeVar("R")
EventHandler = Callable[[], Awaitable[None]]

#: The events an app can handle with ``@app.event``, in the order a task meets them
#: (the values of :class:`~rediq_core.plugins.events.Event`).
EVENT_NAMES: Final[tuple[str, ...]] = tuple(event.value for event in Event)


def _require_coroutine(fn: Any, what: str) -> None:
    if not inspect.iscoroutinefunction(inspect.unwrap(fn)):
        raise TaskRegistrationError(
            f"{what} {getattr(fn, '__qualname__', fn)!r} must be a coroutine function"
            " (defined with `async def`); wrap blocking code with run_in_current_executor()"
        )


class Rediq:
    """A rediq application: register tasks and events on it, enqueue through it.

    :param redis_url: broker URL (``redis://``, ``rediss://``, ``unix://``, Sentinel,
        Cluster, ``memory://``, or any scheme a broker plugin registers). The original
        rediq spelling; ``broker_url`` is the same thing under a broker-neutral name.
    :param redis_config: extra keyword arguments for the broker's client library
        (redis-py); ``broker_config`` is the neutral spelling.
    :param serializer_name: how task arguments and results are encoded; ``json`` by
        default. ``pickle``/``cloudpickle`` execute code on load: use them only with a
        Redis that only trusted parties can write to.
    :param accept_serializers: serializers a worker of this app will decode (default:
        only ``serializer_name``); a message in another format is dead-lettered unread.
    :param namespace: prefix of every key in Redis.
    :param enqueue_retry_s: while Redis is unreachable, ``enqueue()`` retries for up to
        this long before raising :class:`BrokerUnavailableError` (default 0: at once,
        after the client's own short reconnect attempts). At most
        ``MAX_ENQUEUE_RETRY_S``; a retry never stores a task twice.
    :param signing_key: sign every message this app sends (enqueues, cron ticks and
        triggers: HMAC-SHA256 over id, envelope and payload) and, in its workers, decode
        only messages a key verifies.
        Required for serializers that run code when decoding (pickle, cloudpickle),
        unless ``allow_unsigned`` is set.
    :param verify_keys: more keys a worker accepts (rotation: keep the old key here
        while messages signed with it remain).
    :param allow_unsigned: let a worker decode unsigned messages with a serializer that
        runs code on load (a warning is logged at worker start). Only for a Redis that
        only trusted parties can write to.
    :param max_message_bytes: refuse, before sending, a task whose serialized arguments
        and envelope exceed this size (``MessageTooLargeError``; a cron schedule's runs
        are checked at ``@app.cron`` too); 0 disables the check.
    :param event_stream_length: record every task transition in a stream per queue,
        keeping about this many events per queue (``app.events()``, ``rediq events``);
        0 (the default) records nothing. Every process that changes tasks (producers,
        workers, control commands) writes with its own app's setting: give them the same.
    :param event_stream_lengths: queues that keep another number of events (0: none).
    :param queue_shards: ``{queue: shards}``: queues spread over that many shards, as
        :meth:`queue` declares them (docs/scaling.md); the environment variable
        ``REDIQ_QUEUE_SHARDS`` (``emails=8,reports=4``) adds more.
    :param plugins: a plugin host (default: a fresh one from installed entry points).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        redis_config: Mapping[str, Any] | None = None,
        serializer_name: str = defaults.DEFAULT_SERIALIZER,
        *,
        accept_serializers: Iterable[str] | None = None,
        namespace: str = defaults.DEFAULT_NAMESPACE,
        default_queue: str = defaults.DEFAULT_QUEUE,
        enqueue_retry_s: float = 0.0,
        signing_key: str | bytes | None = None,
        verify_keys: Iterable[str | bytes] = (),
        allow_unsigned: bool = False,
        max_message_bytes: int = defaults.MAX_MESSAGE_BYTES,
        event_stream_length: int = defaults.EVENT_STREAM_LENGTH,
        event_stream_lengths: Mapping[str, int] | None = None,
        queue_shards: Mapping[str, int] | None = None,
        broker_url: str | None = None,
        broker_config: Mapping[str, Any] | None = None,
        plugins: PluginHost | None = None,
    ) -> None:
        if broker_url is not None and redis_url is not None:
            raise ConfigurationError("give either redis_url or broker_url (the same thing)")
        if broker_config is not None and redis_config is not None:
            raise ConfigurationError("give either redis_config or broker_config (the same thing)")
        redis_url = broker_url if broker_url is not None else redis_url
        redis_config = broker_config if broker_config is not None else redis_config
        if not 0 <= enqueue_retry_s <= defaults.MAX_ENQUEUE_RETRY_S:
            raise ConfigurationError(
                f"enqueue_retry_s={enqueue_retry_s!r} must be between 0 and"
                f" {defaults.MAX_ENQUEUE_RETRY_S} s (a retry must stay inside the window in"
                " which a re-sent call is recognised)"
            )
        self.enqueue_retry_s = enqueue_retry_s
        self.signer = MessageSigner(signing_key, verify_keys)
        self.allow_unsigned = allow_unsigned
        if max_message_bytes < 0:
            raise ConfigurationError(f"max_message_bytes={max_message_bytes} must be >= 0")
        self.max_message_bytes = max_message_bytes
        self.event_stream_length = check_length("event_stream_length", event_stream_length)
        self.event_stream_lengths = {
            check_name(queue, "queue"): check_length(f"event_stream_lengths[{queue!r}]", n)
            for queue, n in (event_stream_lengths or {}).items()
        }
        self.redis_url = redis_url or defaults.DEFAULT_REDIS_URL
        self.redis_config = dict(redis_config or {})
        self.namespace = check_name(namespace, "namespace")
        self.default_options = TaskOptions(queue=default_queue)
        #: The sharded queues (docs/scaling.md) and the producer's routing among shards.
        self.shards = QueueShards(_shard_counts(queue_shards))
        self.plugins = plugins or make_plugin_host()
        self.serializer_name = serializer_name
        self.serializer = self.plugins.serializer(serializer_name)
        self.accept_serializers = frozenset(accept_serializers or ()) | {serializer_name}
        for name in self.accept_serializers:
            if name not in self.plugins.serializers():
                raise UnknownNameError(
                    f"accept_serializers names {name!r}, which no installed plugin provides"
                )
        self.tasks: dict[str, TaskDefinition[Any, Any]] = {}
        self.handlers: dict[Event, list[EventHandler]] = {event: [] for event in Event}
        self.schedules: dict[str, Schedule] = {}
        self._serializers: dict[str, Serializer] = {serializer_name: self.serializer}
        #: The one path every message of this app is sent by (hooks, signing, size check).
        self.producer = ProducerPipeline(self)
        self._broker: Broker | None = None
        self._broker_loop: asyncio.AbstractEventLoop | None = None
        #: The background loop that carries the blocking ``*_sync()`` calls (rediq_core.sync).
        self.sync_runner = SyncRunner(self)

    def __repr__(self) -> str:
        return f"<Rediq {self.redis_url!r} tasks={len(self.tasks)}>"

    # --- registration -----------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> TaskDefinition[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        task_name: str | None = None,
        task_priority: int | None = None,
        task_queue: str | None = None,
        task_retries: int | None = None,
        task_timeout: int | dt.timedelta | None = None,
        result_ttl: int | dt.timedelta | None = None,
        retry: RetryPolicy | None = None,
        **flow: Unpack[FlowArgs],
    ) -> Callable[[Callable[P, Awaitable[R]]], TaskDefinition[P, R]]: ...

    def task(
        self,
        fn: Callable[P, Awaitable[R]] | None = None,
        /,
        *,
        task_name: str | None = None,
        task_priority: int | None = None,
        task_queue: str | None = None,
        task_retries: int | None = None,
        task_timeout: int | dt.timedelta | None = None,
        result_ttl: int | dt.timedelta | None = None,
        retry: RetryPolicy | None = None,
        **flow: Unpack[FlowArgs],
    ) -> TaskDefinition[P, R] | Callable[[Callable[P, Awaitable[R]]], TaskDefinition[P, R]]:
        """Register a coroutine function as a task (bare ``@app.task`` or with options).

        :param task_name: unique name (default: the function's ``__qualname__``).
        :param task_priority: lower runs first (default 0).
        :param task_queue: queue name (default ``"default"``).
        :param task_retries: retries after the first attempt (default 0).
        :param task_timeout: per attempt, in milliseconds or as a timedelta (default: none).
        :param result_ttl: how long to keep the result, in seconds or as a timedelta
            (default one day; 0 keeps nothing).
        :param retry: which failures are retried, how often and after what delay
            (:class:`~rediq_core.retry.RetryPolicy`; default: every exception, with the
            worker's backoff, ``task_retries`` times).
        :param rate_limit: at most this many starts across every worker, ``"100/s"``,
            ``"10/m"`` or ``"5/h"`` (docs/flow-control.md).
        :param rate_limit_key: one rate bucket per value of this argument (or of what
            this callable returns, given the task's arguments).
        :param concurrency_limit: at most this many running across every worker.
        :param concurrency_key: the limit counts per value of this argument (or callable).
        :param fair_key: tasks of the queue take turns by this argument's value (or the
            callable's), round-robin among its values.
        :param expires: seconds (or a timedelta) from its enqueue: a task not started by
            then ends ``expired`` and never runs.
        :param deadline: seconds (or a timedelta) from its enqueue after which no attempt
            (a retry included) starts; the task then ends ``expired``.
        :param unique: ``"until_done"`` or ``"until_started"``: while a task with the same
            unique key is unfinished (or not started), an enqueue stores nothing and its
            handle follows that task.
        :param unique_key: the unique key's argument (or a callable); default: the task
            and all its arguments.
        :param debounce: seconds (or a timedelta): a burst of enqueues with one debounce
            key runs once, the last call, this long after it (the earlier ones end
            cancelled).
        :param debounce_key: the debounce key's argument (or a callable); default: the
            task alone (every call of it).
        """
        check_flow_args(flow)  # a typo fails here, before the function is decorated
        options = self.default_options.merged(
            retry=retry,
            priority=task_priority,
            queue=task_queue,
            retries=task_retries,
            timeout_ms=milliseconds(task_timeout),
            result_ttl_s=seconds(result_ttl),
        )

        def decorate(func: Callable[P, Awaitable[R]]) -> TaskDefinition[P, R]:
            _require_coroutine(func, "task function")
            limits = options.flow.merged(inspect.signature(func), **flow)
            name = check_name(task_name if task_name is not None else func.__qualname__)
            if name in self.tasks:
                raise TaskRegistrationError(
                    f"a task named {name!r} is already registered"
                    f" ({self.tasks[name].fn.__module__}); pass a unique task_name="
                )
            definition = TaskDefinition(self, func, name, replace(options, flow=limits))
            self.tasks[name] = definition
            return definition

        return decorate(fn) if fn is not None else decorate

    def queue(self, name: str, *, shards: int = 1) -> QueueSpec:
        """Declare how ``name`` is stored: ``shards`` > 1 spreads it over that many
        shards, which a Redis Cluster's masters share (docs/scaling.md). Producers of
        this app spread its tasks over the shards (round-robin, or by the call's
        ``shard_key``); its workers consume every shard. Declare it alike in every
        process of the app (or set ``REDIQ_QUEUE_SHARDS``).

        Raises :class:`ConfigurationError` when ``name`` was declared with another
        number of shards.
        """
        count = check_shards(name, shards)
        known = self.shards.counts.get(name)
        if known is not None and known != count:
            raise ConfigurationError(
                f"queue {name!r} is declared with {known} shards already (queue_shards,"
                f" REDIQ_QUEUE_SHARDS or app.queue); give it one number of shards"
            )
        self.shards.declare(name, count)
        for key, schedule in self.schedules.items():  # declared after its schedules
            spec = schedule.spec
            if spec.queue == name:
                routed = replace(spec, queue=self.shards.by_key(name, "cron:" + spec.name))
                self.schedules[key] = replace(schedule, spec=routed)
        return QueueSpec(name, count)

    @overload
    def event(self, fn: EventHandler, /) -> EventHandler: ...

    @overload
    def event(
        self, fn: None = None, /, *, event_name: str | None = None
    ) -> Callable[[EventHandler], EventHandler]: ...

    def event(
        self, fn: EventHandler | None = None, /, *, event_name: str | None = None
    ) -> EventHandler | Callable[[EventHandler], EventHandler]:
        """Register an event handler (bare ``@app.event`` uses the function's name).
        Several handlers of one event run in registration order."""

        def decorate(func: EventHandler) -> EventHandler:
            name = event_name if event_name is not None else getattr(func, "__name__", "")
            if name not in EVENT_NAMES:
                raise TaskRegistrationError(
                    f"unknown event {name!r}; events are: {', '.join(EVENT_NAMES)}"
                )
            _require_coroutine(func, f"{name} handler")
            self.handlers[Event(name)].append(func)
            return func

        return decorate(fn) if fn is not None else decorate

    def cron(
        self,
        expression: str,
        *,
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timezone: str = defaults.CRON_TIMEZONE,
        jitter: float = 0,
        missed: str = defaults.CRON_MISSED,
        queue: str | None = None,
        priority: int | None = None,
    ) -> Callable[[TaskDefinition[P, R]], TaskDefinition[P, R]]:
        """Run a task periodically; put it on top of ``@app.task`` (stack several for
        several schedules). Each tick runs once across every worker (docs/cron.md).

        :param expression: 5 fields (minute hour day month weekday), 6 with a leading
            seconds field, or an alias such as ``@hourly``.
        :param name: the schedule's stable identity (default: task name and expression).
        :param args: positional arguments of every run; ``kwargs`` likewise.
        :param timezone: IANA zone the expression is read in (default UTC).
        :param jitter: delay each run by a random 0..``jitter`` seconds.
        :param missed: ``"skip"`` ticks missed while no worker ran, or ``"run_once"``.
        :param queue: run on another queue of this app than the task's.
        :param priority: the runs' priority (default: the task's).
        """

        def decorate(task: TaskDefinition[P, R]) -> TaskDefinition[P, R]:
            if not isinstance(task, TaskDefinition) or task.app is not self:
                raise TaskRegistrationError(
                    f"@app.cron must decorate a task of this app (put it above @app.task),"
                    f" got {task!r}"
                )
            schedule = make_schedule(
                self,
                task,
                expression,
                name=name,
                args=args,
                kwargs=kwargs or {},
                timezone=timezone,
                jitter=jitter,
                missed=missed,
                queue=queue,
                priority=priority,
            )
            self.schedules[schedule.name] = schedule
            return task

        return decorate

    @property
    def cron_control(self) -> CronControl:
        """List, pause, resume and trigger the schedules stored in the broker."""
        return CronControl(
            self.get_broker(), orphan_after_s=defaults.CRON_ORPHAN_AFTER_S, producer=self.producer
        )

    # --- serializers and broker -------------------------------------------------------

    def serializer_for(self, name: str) -> Serializer:
        """A serializer this app accepts; a clear error for any other name."""
        if name not in self.accept_serializers:
            raise UnknownNameError(
                f"serializer {name!r} is not accepted by this app (accepted:"
                f" {', '.join(sorted(self.accept_serializers))}); add it to accept_serializers"
            )
        if name not in self._serializers:
            self._serializers[name] = self.plugins.serializer(name)
        return self._serializers[name]

    @property
    def broker_url(self) -> str:
        """The broker URL (``redis_url`` is the original spelling of the same attribute)."""
        return self.redis_url

    @property
    def broker_options(self) -> BrokerOptions:
        """What a broker of this app is built from (a worker builds a second one for its
        lease keeper thread)."""
        return BrokerOptions(
            url=self.redis_url,
            config=self.redis_config,
            namespace=self.namespace,
            enqueue_retry_s=self.enqueue_retry_s,
            event_stream_length=self.event_stream_length,
            event_stream_lengths={
                shard: n
                for queue, n in self.event_stream_lengths.items()
                for shard in {queue, *self.shards.names(queue)}
            },
        )

    def get_broker(self) -> Broker:
        """The app's broker, built on first use from ``redis_url``.

        A broker's connections belong to the event loop that opened them: used from
        another loop (a second ``asyncio.run()``, a test framework's loop per test) the app
        builds a fresh broker for it, so forgetting ``close()`` between loops does not
        fail with "Event loop is closed". On the loop of the blocking ``*_sync()`` calls
        it is that loop's own broker (:mod:`rediq_core.sync`)."""
        loop = _running_loop()
        if loop is not None and (sync_broker := self.sync_runner.broker_for(loop)) is not None:
            return sync_broker
        if (
            self._broker is not None
            and loop is not None
            and self._broker_loop is not None
            and loop is not self._broker_loop
        ):
            self._broker = None  # its connections belong to the other (maybe closed) loop
        if self._broker is None:
            self._broker = self.plugins.broker(self.broker_options)
            self._broker_loop = loop
        return self._broker

    @property
    def control(self) -> Control:
        """The control API: inspect and operate queues, tasks and workers."""
        return Control(self.get_broker(), self.shards)

    async def handle(self, task_id: str) -> TaskHandle[Any]:
        """A handle for any existing task, found by its id alone (in whichever queue), so
        one process can await, inspect or cancel what another enqueued.

        Raises :class:`TaskNotFoundError` if no queue knows the task (never enqueued,
        deleted, purged, or its result expired).
        """
        record = await roles.results(self.get_broker()).get_task(task_id)
        if record is None:
            raise TaskNotFoundError(f"no task {task_id} in any queue (or its result expired)")
        ttl = record.message.result_ttl_s if record.message else defaults.DEFAULT_RESULT_TTL_S
        handle: TaskHandle[Any] = TaskHandle(
            self, task_id, record.queue, accepted=True, result_ttl_s=ttl
        )
        return handle

    def handle_sync(self, task_id: str) -> TaskHandle[Any]:
        """:meth:`handle`, blocking: for code without an event loop (docs/sync.md)."""
        return self.sync_runner.call(self.handle, task_id)

    async def enqueue_workflow(self, workflow: Step[R]) -> WorkflowHandle[R]:
        """Publish a workflow (``chain``, ``group``, ``chord``; what their ``enqueue()``
        does); a handle to follow it. Its steps are checked first: a workflow that cannot
        run as written raises :class:`ConfigurationError` and nothing is sent."""
        from .workflows import enqueue_workflow

        compiled = plan(workflow)
        if not compiled.steps:
            raise ConfigurationError("an empty workflow has no step to run")
        for step in compiled.steps:
            if step.call.task.app is not self:
                raise ConfigurationError(f"task {step.call.task.name!r} belongs to another app")
        handle: WorkflowHandle[R] = await enqueue_workflow(self, compiled)
        return handle

    async def workflow(self, workflow_id: str) -> WorkflowHandle[Any]:
        """The handle of a workflow found by its id (``str(handle)``), so one process can
        await, inspect or cancel what another enqueued. Raises
        :class:`TaskNotFoundError` if the broker holds no such workflow (never
        enqueued, or its record expired)."""
        from .workflows import workflow_handle

        return await workflow_handle(self, workflow_id)

    def workflow_sync(self, workflow_id: str) -> WorkflowHandle[Any]:
        """:meth:`workflow`, blocking: for code without an event loop (docs/sync.md)."""
        return self.sync_runner.call(self.workflow, workflow_id)

    def events(
        self,
        queues: Sequence[str] | None = None,
        since: EventSince = None,
        *,
        follow: bool = True,
    ) -> AsyncIterator[TaskEvent]:
        """The task events of ``queues`` (default: every queue the broker knows now),
        after ``since``: None or ``"$"`` for only events to come, ``"0"`` for every event
        kept, an event's ``id`` (or several, one per queue) to resume after it, or a
        time (an aware datetime or epoch seconds). In order within each queue. With
        ``follow`` (the default) it waits for new events without polling until you stop
        iterating; without, it ends once the streams were read to their end. Events are
        recorded only with ``event_stream_length`` > 0 (docs/observability.md). Bad
        ``queues`` or ``since`` raise ``ConfigurationError`` at once, a broker without the
        events role ``MissingRoleError``."""
        if isinstance(queues, str):
            raise ConfigurationError(f"queues={queues!r}: give a list of queue names")
        names = None if queues is None else [check_name(q, "queue") for q in queues]
        start_cursors(names or ["-"], since)  # checks `since` now, not at the first event
        reader = roles.events(self.get_broker())

        async def read() -> AsyncIterator[TaskEvent]:
            control = self.control
            wanted = names if names is not None else await control.queues()
            known = [shard for queue in wanted for shard in await control.shards(queue)]
            async for event in follow_events(reader, known, since, follow=follow):
                yield event

        return read()

    async def result(self, task_id: str, timeout: float | dt.timedelta | None = None) -> Any:
        """Wait for the task with this id to end and return its result (see
        :meth:`TaskHandle.result` for the errors), wherever it was enqueued from."""
        return await (await self.handle(task_id)).result(timeout)

    def result_sync(self, task_id: str, timeout: float | dt.timedelta | None = None) -> Any:
        """:meth:`result`, blocking: for code without an event loop (docs/sync.md).
        Raises :class:`TimeoutError` after ``timeout`` as :meth:`result` does."""
        return self.sync_runner.call(self.result, task_id, timeout)

    async def close(self) -> None:
        """Close the broker's connections, and stop the loop of the blocking ``*_sync()``
        calls if one runs (a later blocking call starts a new one)."""
        loop = asyncio.get_running_loop()
        if self._broker is not None:
            broker, self._broker = self._broker, None
            if self._broker_loop in (None, loop):
                await broker.close()
        if self.sync_runner.running and not self.sync_runner.owns(loop):
            await asyncio.to_thread(self.sync_runner.close)

    def close_sync(self) -> None:
        """Stop the loop of the blocking ``*_sync()`` calls and close its connections (the
        runner of every app is also closed at interpreter exit). For code without an event
        loop; in a coroutine ``await close()``."""
        refuse_in_event_loop("close")
        self.sync_runner.close()

    # --- enqueueing -------------------------------------------------------------------

    def build_message(self, call: TaskCall[Any]) -> TaskMessage:
        """Serialize a call into a message (the pipeline's first step); raise
        :class:`SerializationError` at once."""
        return self.producer.build(call)

    async def enqueue_many(self, calls: Sequence[TaskCall[R]]) -> list[TaskHandle[R]]:
        """Publish several calls in one pipelined round trip; one handle per call."""
        for call in calls:
            if call.task.app is not self:
                raise ConfigurationError(f"task {call.task.name!r} belongs to another app")
            refuse_partial(call)
        sent = await self.producer.publish_calls(roles.producer(self.get_broker()), calls)
        return [
            TaskHandle[R](
                self,
                o.task_id,  # a duplicate's handle follows the task it duplicates
                m.queue,
                accepted=o.accepted,
                result_ttl_s=m.result_ttl_s if o.result_ttl_s is None else o.result_ttl_s,
            )
            for m, o in sent
        ]

    def enqueue_many_sync(self, calls: Sequence[TaskCall[R]]) -> list[TaskHandle[R]]:
        """:meth:`enqueue_many`, blocking: for code without an event loop (docs/sync.md)."""
        return self.sync_runner.call(self.enqueue_many, calls)

    def unsafe_serializers(self) -> list[str]:
        """Accepted serializers that run code on load while this app verifies nothing."""
        if self.signer.verifies:
            return []
        return sorted(
            name
            for name in self.accept_serializers
            if getattr(self.serializer_for(name), "executes_code_on_load", False)
        )

    def decode_result(self, record: TaskRecord) -> Any:
        """The value of a finished record, or the error it stands for."""
        raise_for_record(record)
        if record.state is not TaskState.SUCCEEDED or record.result is None:
            return None
        return self.serializer_for(record.serializer or self.serializer_name).loads(record.result)


def _shard_counts(given: Mapping[str, int] | None) -> dict[str, int]:
    """``queue_shards=``, with those ``REDIQ_QUEUE_SHARDS`` adds; a queue both give
    must have one number of shards in both."""
    counts = {queue: check_shards(queue, n) for queue, n in (given or {}).items()}
    setting = os.environ.get(defaults.ENV_QUEUE_SHARDS, "")
    for queue, n in parse_shards_setting(setting, defaults.ENV_QUEUE_SHARDS).items():
        if counts.setdefault(queue, n) != n:
            raise ConfigurationError(
                f"queue {queue!r} has {counts[queue]} shards in queue_shards= but {n} in"
                f" {defaults.ENV_QUEUE_SHARDS}; give it one number of shards"
            )
    return counts


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
