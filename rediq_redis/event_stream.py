"""The task event stream on Redis: one STREAM per queue (``{NS:Q}:events``).

The scripts write it (the prelude's ``emit()``, one ``XADD ... MAXLEN ~ N`` per task
transition, in the step that makes the transition); this module tells the scripts the
lengths (:class:`EventLengths`, baked into the script text as the replay window is) and
reads the streams (:func:`read_events`): ``XREAD BLOCK`` over every requested stream at
once on one server, one blocking read per queue on a cluster (each queue's stream lives
on the node of its slot), merged as they come. Nothing polls: a read blocks until an
event comes, at most ``wake_safety_cap_s`` at a time. A follower outlives a lost
connection (a restart, a failover): it reads again after each stream's last event seen,
after a pause that doubles from ``WORKER_RECONNECT_MIN_S`` to ``WORKER_RECONNECT_MAX_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from rediq_core import defaults
from rediq_core.records import BrokerOptions
from rediq_core.task_events import LATEST, OLDEST, TaskEvent, TaskEventKind

from .cluster import is_cluster
from .connection import UNREACHABLE, pool_exhausted
from .keys import QueueKeys

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .session import Session

__all__ = ["EVENTS_PER_READ", "NO_EVENTS", "EventLengths", "read_events"]

#: Entries asked for per stream and read.
EVENTS_PER_READ: Final = 500
logger = logging.getLogger("rediq.broker.redis")
_KINDS = {kind.value: kind for kind in TaskEventKind}


@dataclass(frozen=True, slots=True)
class EventLengths:
    """How many events each queue's stream keeps: ``default``, and ``tags`` (the queue's
    hash tag -> its own length). Generated into the prelude as the Lua table
    ``EVENT_LENGTHS`` (``'*'``: the default)."""

    default: int = 0
    tags: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, options: BrokerOptions) -> EventLengths:
        tags = tuple(
            sorted(
                (QueueKeys(options.namespace, queue).tag, n)
                for queue, n in options.event_stream_lengths.items()
            )
        )
        return cls(options.event_stream_length, tags)

    def lua_table(self) -> str:
        entries = [f"['*'] = {int(self.default)}"]
        for tag, n in self.tags:
            escaped = tag.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
            entries.append(f"['{escaped}'] = {int(n)}")
        return "{ " + ", ".join(entries) + " }"


#: No event stream at all (the default of a broker built without options).
NO_EVENTS: Final = EventLengths()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _event(queue: str, entry_id: Any, fields: Mapping[Any, Any]) -> TaskEvent | None:
    """An entry as an event (None: a kind this version does not know)."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    kind = _KINDS.get(values.get("k", ""))
    if kind is None:
        return None
    position = _text(entry_id)
    return TaskEvent(
        id=f"{queue}:{position}",
        kind=kind,
        queue=queue,
        task_id=values.get("t", ""),
        task_name=_unescaped(values.get("n", "")),
        time_ms=int(position.partition("-")[0]),
        attempt=int(values.get("a", "1") or 1),
        detail=values.get("d", ""),
    )


def _unescaped(name: str) -> str:
    """A task name as the envelope's JSON spells it, unescaped (``caf\\u00e9``: café)."""
    if "\\" not in name:
        return name
    try:
        return str(json.loads(f'"{name}"'))
    except ValueError:
        return name


def _entries(reply: Any) -> Iterable[tuple[str, Sequence[Any]]]:
    """(key, entries) of an XREAD reply (RESP2: a list of pairs; RESP3: a map)."""
    if not reply:
        return ()
    if isinstance(reply, Mapping):
        return ((_text(k), v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items())
    return ((_text(key), entries) for key, entries in reply)


async def _latest(client: Redis, key: str) -> str:
    last = await client.xrevrange(key, count=1)
    return _text(last[0][0]) if last else OLDEST


async def _read_group(
    client: Redis, positions: dict[str, str], queues: Mapping[str, str], follow: bool, block_ms: int
) -> AsyncGenerator[list[TaskEvent], None]:
    """Batches of events of the streams ``positions`` (key -> last position read), read
    with one XREAD per call; without ``follow`` it ends when a read finds nothing. A
    follower whose connection broke reads again from where it was (after a back-off:
    the server is unreachable; not a poll)."""
    pause = defaults.WORKER_RECONNECT_MIN_S
    while True:
        streams: dict[Any, Any] = dict(positions)
        try:
            reply = await client.xread(
                streams, count=EVENTS_PER_READ, block=block_ms if follow else None
            )
        except UNREACHABLE as exc:
            if not follow or pool_exhausted(exc):
                raise
            logger.warning("event stream: %s; reading again in %.1f s", exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)
            continue
        pause = defaults.WORKER_RECONNECT_MIN_S
        batch: list[TaskEvent] = []
        for key, entries in _entries(reply):
            for entry_id, fields in entries:
                positions[key] = _text(entry_id)
                event = _event(queues[key], entry_id, fields)
                if event is not None:
                    batch.append(event)
        if batch:
            yield batch
        elif not follow and not reply:
            return


async def read_events(
    session: Session, cursors: Mapping[str, str], follow: bool
) -> AsyncGenerator[TaskEvent, None]:
    """The events after each queue's cursor (``"$"``: the stream's last entry when the
    call begins), in order within a queue."""
    client = session.blocking
    queues = {session.keys.queue(q).key("events"): q for q in cursors}
    keys = list(queues)
    latest = [k for k in keys if cursors[queues[k]] == LATEST]
    found = await asyncio.gather(*(_latest(session.client, k) for k in latest))
    positions = {k: cursors[queues[k]] for k in keys} | dict(zip(latest, found, strict=True))
    block_ms = max(1, int(session.settings.wake_safety_cap_s * 1000))
    # one read for every stream on one server; one per queue on a cluster (other slots)
    groups = [[k] for k in keys] if is_cluster(client) else [keys]
    readers = [
        _read_group(client, {k: positions[k] for k in group}, queues, follow, block_ms)
        for group in groups
    ]
    if len(readers) == 1:
        async with contextlib.aclosing(readers[0]) as reader:
            async for batch in reader:
                for event in batch:
                    yield event
        return
    async for event in _merged(readers):
        yield event


async def _merged(
    readers: Sequence[AsyncGenerator[list[TaskEvent], None]],
) -> AsyncIterator[TaskEvent]:
    """The events of several readers as they come (each reader runs as a task)."""
    inbox: asyncio.Queue[list[TaskEvent] | BaseException | None] = asyncio.Queue()

    async def pump(reader: AsyncGenerator[list[TaskEvent], None]) -> None:
        try:
            async with contextlib.aclosing(reader):
                async for batch in reader:
                    await inbox.put(batch)
            await inbox.put(None)
        except Exception as exc:
            await inbox.put(exc)

    tasks = [asyncio.create_task(pump(reader)) for reader in readers]
    running = len(tasks)
    try:
        while running:
            item = await inbox.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                for event in item:
                    yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
