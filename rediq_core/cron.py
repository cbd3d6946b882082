"""Periodic tasks: ``@app.cron(...)`` schedules and their control API (docs/cron.md).

``@app.cron`` goes on top of ``@app.task``; stack several for several schedules of one
task. Everything is checked at decoration time. Workers serving a schedule's queue fire
its ticks (``rediq_core.worker.cron``); :class:`CronControl` lists, pauses, resumes and
triggers schedules from anywhere (the ``rediq cron`` command uses it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import roles
from .broker import Broker, TaskRecord, TaskState
from .cron_records import CronEntry, MissedPolicy, ScheduleSpec
from .errors import ConfigurationError, TaskRegistrationError, UnknownNameError
from .message import now_ms
from .options import check_queue

if TYPE_CHECKING:
    from .app import Rediq
    from .crontab import CronExpression
    from .producer import ProducerPipeline
    from .task import TaskDefinition

__all__ = ["CronControl", "Schedule", "ScheduleStatus", "make_schedule"]

_MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule registered in code: its stored spec and its parsed expression."""

    spec: ScheduleSpec
    cron: CronExpression

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def missed(self) -> MissedPolicy:
        return MissedPolicy(self.spec.missed)


def _check_args(
    task: TaskDefinition[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    try:
        task.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigurationError(
            f"schedule of task {task.name!r}: the task cannot be called with args={tuple(args)!r}"
            f" kwargs={dict(kwargs)!r} ({exc}); its signature is {task.name}{task.signature}."
            " Give the arguments each run gets with @app.cron(..., args=..., kwargs=...)"
        ) from None


def _check_queue(app: Rediq, task: TaskDefinition[Any, Any], queue: str | None) -> str:
    if queue is None:
        return task.options.queue
    check_queue(queue, "queue")
    known = {app.default_options.queue} | {t.options.queue for t in app.tasks.values()}
    if queue not in known:
        raise UnknownNameError(
            f"schedule of task {task.name!r} names queue {queue!r}, which no task of this app"
            f" uses (known queues: {', '.join(sorted(known))}); a worker of this app would"
            " never serve it"
        )
    return queue


def make_schedule(
    app: Rediq,
    task: TaskDefinition[Any, Any],
    expression: str,
    *,
    name: str | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    timezone: str,
    jitter: float,
    missed: str,
    queue: str | None,
    priority: int | None,
) -> Schedule:
    """Validate one ``@app.cron`` registration and build its schedule (no I/O)."""
    # imported here, on @app.cron: an app without schedules never loads the parser
    from .crontab import CronExpression

    cron = CronExpression(expression, timezone)
    _check_args(task, args, kwargs)
    target = _check_queue(app, task, queue)
    try:
        policy = MissedPolicy(missed)
    except ValueError:
        raise ConfigurationError(
            f"missed={missed!r} is invalid: expected one of"
            f" {', '.join(repr(p.value) for p in MissedPolicy)}"
        ) from None
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or jitter < 0:
        raise ConfigurationError(f"jitter={jitter!r} is invalid: expected seconds >= 0")
    if name is None:
        name = f"{task.name}[{cron.expression}]"
        if args or kwargs:  # a short digest keeps schedules with other arguments apart
            encoded = json.dumps([list(args), dict(kwargs)], default=repr, sort_keys=True)
            name += "#" + hashlib.sha256(encoded.encode()).hexdigest()[:8]
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise ConfigurationError(
            f"schedule name={name!r} is invalid: expected 1-{_MAX_NAME} characters"
            " (pass a shorter name=)"
        )
    # a sharded queue keeps a schedule's state in one shard, the one its name routes to
    target = app.shards.by_key(target, "cron:" + name)
    call = task(*args, **kwargs)
    if priority is not None:
        call = call.options(priority=priority)
    message = app.build_message(call)  # serializes the arguments now: errors surface here
    options = call.resolved_options
    spec = ScheduleSpec(
        name=name,
        task=task.name,
        queue=target,
        expression=cron.expression,
        timezone=timezone,
        missed=policy.value,
        jitter_ms=int(jitter * 1000),
        serializer=message.serializer,
        payload=message.payload,
        priority=options.priority,
        retries=options.retries,
        timeout_ms=options.timeout_ms,
        result_ttl_s=options.result_ttl_s,
        flow=None if message.flow is None else message.flow.to_json(),
    )
    if name in app.schedules:
        raise TaskRegistrationError(
            f"a schedule named {name!r} is already registered; pass a unique name="
        )
    now = now_ms()  # a run as the pipeline will seal it: too large fails here, not per tick
    app.producer.seal(spec.message(spec.task_id(now), tick_ms=now, eta_ms=now))
    return Schedule(spec, cron)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleStatus:
    """One schedule as ``rediq cron`` shows it."""

    name: str
    task: str
    queue: str
    expression: str
    timezone: str
    paused: bool
    orphaned: bool
    next_ticks_ms: tuple[int, ...]
    last_tick_ms: int | None
    last_task_id: str | None
    last_state: str | None

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class CronControl:
    """List, pause, resume and trigger stored schedules (read from the broker, so the
    schedules' code is not needed).

    :param orphan_after_s: a schedule no live worker registered for this long is orphaned.
    :param producer: the pipeline a triggered run is sent through (signed, hooked, size
        checked like every message of the app); ``app.cron_control`` passes the app's.
    """

    def __init__(
        self, broker: Broker, *, orphan_after_s: float, producer: ProducerPipeline | None = None
    ) -> None:
        self.broker = broker
        self._cron = roles.cron(broker)
        self._results = roles.results(broker)
        self.orphan_after_s = orphan_after_s
        self.producer = producer

    async def _entry(self, name: str) -> CronEntry:
        for entry in await self._cron.cron_entries():
            if entry.spec.name == name:
                return entry
        raise UnknownNameError(f"no schedule named {name!r} is stored")

    async def list(self, *, upcoming: int = 3) -> list[ScheduleStatus]:
        """Every stored schedule with its next ``upcoming`` ticks and last run's state."""
        from .crontab import CronExpression

        now = now_ms()
        statuses = []
        for entry in await self._cron.cron_entries():
            spec = entry.spec
            record: TaskRecord | None = None
            if entry.last_task_id:
                record = await self._results.get_task(entry.last_task_id, spec.queue)
            orphaned = now - entry.seen_ms > self.orphan_after_s * 1000
            nexts = (
                ()
                if orphaned
                else tuple(
                    CronExpression(spec.expression, spec.timezone).ticks_after(now, upcoming)
                )
            )
            statuses.append(
                ScheduleStatus(
                    name=spec.name,
                    task=spec.task,
                    queue=spec.queue,
                    expression=spec.expression,
                    timezone=spec.timezone,
                    paused=entry.paused,
                    orphaned=orphaned,
                    next_ticks_ms=nexts,
                    last_tick_ms=entry.last_tick_ms,
                    last_task_id=entry.last_task_id,
                    last_state=_outcome(record) if entry.last_task_id else None,
                )
            )
        return sorted(statuses, key=lambda s: (s.queue, s.name))

    async def pause(self, name: str) -> None:
        """Stop firing ``name`` (its ticks pass without runs) until resumed."""
        entry = await self._entry(name)
        await self._cron.cron_set_paused(entry.spec.queue, name, True)

    async def resume(self, name: str) -> None:
        entry = await self._entry(name)
        await self._cron.cron_set_paused(entry.spec.queue, name, False)

    async def trigger(self, name: str) -> str:
        """Run ``name`` now, once, outside its ticks (even when paused); return the task id."""
        if self.producer is None:
            raise ConfigurationError(
                "triggering a schedule sends a message: use app.cron_control, whose runs the"
                " app signs and checks like every other message"
            )
        spec = (await self._entry(name)).spec
        sent, _ = await self.producer.publish_tick(self._cron, spec, None)
        return sent.id

    async def forget(self, name: str) -> None:
        """Remove a stored schedule (a live worker serving it stores it again)."""
        entry = await self._entry(name)
        await self._cron.cron_forget(entry.spec.queue, name)


def _outcome(record: TaskRecord | None) -> str:
    if record is None:
        return "unknown (result expired)"
    if record.state is TaskState.FAILED and record.error is not None:
        return f"failed: {record.error.type}: {record.error.message}"
    return record.state.value
