"""The task event stream: what happened to tasks, queue by queue, as brokers record it.

A broker with the :class:`~rediq_core.roles.Role.EVENTS` role records every task
transition (enqueued, started, retried, succeeded, failed, ...) in a bounded stream per
queue, in the same atomic step as the transition itself (docs/observability.md, "Event
stream"). :func:`follow_events` reads those streams (``Rediq.events()``, ``rediq events``).

An event's position in its queue is ``"<ms>-<seq>"`` (the server's time of the
transition and a sequence number within that millisecond, like a Redis stream id); its
:attr:`TaskEvent.id` is ``"<queue>:<position>"``, which :func:`start_cursors` takes back
to resume after it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .roles import Events

__all__ = [
    "EVENT_STREAM_OFF",
    "EventSince",
    "TaskEvent",
    "TaskEventKind",
    "event_stream_length",
    "follow_events",
    "position_after",
    "start_cursors",
]

#: The stream length that disables a queue's event stream (nothing is written).
EVENT_STREAM_OFF: Final = 0
#: A position (``"<ms>-<seq>"``) as the brokers write them.
_POSITION = re.compile(r"^\d+-\d+$")
#: The largest sequence number within a millisecond (a position just before the next ms).
_LAST_SEQ: Final = 2**64 - 1
#: Cursors a broker's ``events()`` understands besides a position.
LATEST: Final = "$"
OLDEST: Final = "0-0"


class TaskEventKind(enum.StrEnum):
    """What happened to a task (the words of :class:`~rediq_core.records.TaskState` and
    of the hooks)."""

    ENQUEUED = "enqueued"  # stored (pending, scheduled or waiting), or a dead letter requeued
    STARTED = "started"  # leased to a worker: an attempt starts (detail: the worker)
    PROGRESS = "progress"  # a running task reported progress
    RETRIED = "retried"  # an attempt failed and the task will run again (detail: the error)
    SUCCEEDED = "succeeded"  # ended with a result
    FAILED = "failed"  # ended failed for good: it is in the dead-letter set (detail: the error)
    DEAD_LETTERED = "dead-lettered"  # put in the dead-letter set unread (a malformed record)
    CANCELLED = "cancelled"  # ended cancelled (detail: why, when it was not asked for)
    EXPIRED = "expired"  # ended by its expiry or deadline before an attempt could start
    DELETED = "deleted"  # forgotten by an operator (delete, purge, dead-letter deletion)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One transition of one task.

    :param id: ``"<queue>:<position>"``: pass it as ``since=`` to resume after this event.
    :param kind: what happened.
    :param queue: the task's queue.
    :param task_id: the task's id.
    :param task_name: the registered name of the task.
    :param time_ms: when it happened, on the broker's clock (epoch milliseconds).
    :param attempt: the attempt it is about, 1 for the first (``retried``: the attempt
        that failed; ``enqueued``: the attempt to come).
    :param detail: ``started``: the worker; ``retried``, ``failed`` and errors of other
        ends: ``"<error type>: <message>"``; ``enqueued``: the state it was stored in
        (``pending``, ``scheduled``, ``waiting``) or ``requeued``; else empty.
    """

    id: str
    kind: TaskEventKind
    queue: str
    task_id: str
    task_name: str
    time_ms: int
    attempt: int
    detail: str = ""

    @property
    def position(self) -> str:
        """The event's position in its queue's stream (``"<ms>-<seq>"``)."""
        return self.id[len(self.queue) + 1 :]

    @property
    def time(self) -> dt.datetime:
        """:attr:`time_ms` as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.time_ms / 1000, dt.UTC)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "queue": self.queue,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "time_ms": self.time_ms,
            "attempt": self.attempt,
            "detail": self.detail,
        }


#: What ``since=`` accepts: None or ``"$"`` (only events to come), ``"0"`` (every event
#: kept), an event id or several (one per queue), or a time (aware datetime, or epoch s).
EventSince = str | Iterable[str] | dt.datetime | float | None


def event_stream_length(lengths: Mapping[str, int], default: int, queue: str) -> int:
    """The stream length a queue's events are trimmed to (0: no stream)."""
    return lengths.get(queue, default)


def check_length(name: str, value: object) -> int:
    """A stream length from the configuration: an int >= 0, else a clear error."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"{name}={value!r} must be a whole number >= 0 (events kept per queue; 0: no"
            " event stream)"
        )
    return value


def position_after(time_ms: int) -> str:
    """The cursor just before every event at or after ``time_ms``."""
    if time_ms <= 0:
        return OLDEST
    return f"{time_ms - 1}-{_LAST_SEQ}"


def _split_id(event_id: str) -> tuple[str, str]:
    queue, sep, position = event_id.rpartition(":")
    if not sep or not queue or not _POSITION.match(position):
        raise ConfigurationError(
            f"since={event_id!r} is not an event id: give TaskEvent.id ('<queue>:<ms>-<seq>'),"
            " '$' (only new events), '0' (every event kept) or a time"
        )
    return queue, position


def _time_ms(since: dt.datetime | float) -> int:
    if isinstance(since, dt.datetime):
        if since.tzinfo is None:
            raise ConfigurationError(
                f"since={since!r} has no time zone: give an aware datetime"
                " (e.g. datetime.now(UTC) - timedelta(minutes=5))"
            )
        return int(since.timestamp() * 1000)
    return int(since * 1000)


def start_cursors(queues: Sequence[str], since: EventSince) -> dict[str, str]:
    """Each queue's cursor for ``since`` (see :data:`EventSince`): events after it are
    read. A queue without an id of its own among several ids starts at the time of the
    latest of them (clocks of different Redis nodes may differ a little)."""
    if since is None or since == LATEST:
        return dict.fromkeys(queues, LATEST)
    if since == "0":
        return dict.fromkeys(queues, OLDEST)
    if isinstance(since, bool):
        raise ConfigurationError(f"since={since!r}: give an event id, '$', '0' or a time")
    if isinstance(since, dt.datetime | int | float):
        return dict.fromkeys(queues, position_after(_time_ms(since)))
    ids = [since] if isinstance(since, str) else list(since)
    if not ids:
        raise ConfigurationError("since=[] names no event: give None for only new events")
    given = dict(_split_id(i) for i in ids)
    latest_ms = max(int(p.partition("-")[0]) for p in given.values())
    return {q: given.get(q, position_after(latest_ms)) for q in queues}


async def follow_events(
    events: Events,
    queues: Sequence[str],
    since: EventSince = None,
    *,
    follow: bool = True,
) -> AsyncIterator[TaskEvent]:
    """The events of ``queues`` after ``since``, in order within each queue. With
    ``follow`` it waits for new events (blocking reads, no polling) until the caller
    stops iterating; without, it ends once every queue's stream was read to its end."""
    if not queues:
        raise ConfigurationError("no queue to read events of: name one, or enqueue a task first")
    cursors = start_cursors(queues, since)
    async for event in events.events(cursors, follow=follow):
        yield event
