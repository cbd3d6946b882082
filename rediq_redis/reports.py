"""A running task's progress and log lines on Redis (docs/broker.md, "Progress and logs").

The worker writes them with ``report.lua`` (one call per task that reported something,
all of them in one round trip), only under a lease it still holds; they live in the
task's trail hash ``{NS:Q}:trail:<id>``, which the scripts that end or forget the task
keep with its result or delete.
"""

from __future__ import annotations

from collections.abc import Sequence

from rediq_core.tasklogs import (
    LogBounds,
    TaskLogs,
    TaskReport,
    TrailUpdate,
    decode_lines,
    decode_progress,
)

from .layout import RECORD_FIELDS, TRAIL_LINE_END, parse_record
from .scripts import run_batch
from .session import Session

__all__ = ["get_report", "report"]


async def report(
    session: Session, worker_id: str, updates: Sequence[TrailUpdate], bounds: LogBounds
) -> list[bool]:
    if not updates:
        return []
    calls = []
    for u in updates:
        keys = session.keys.queue(u.queue)
        calls.append(
            session.scripts.report.call(
                [*keys.all, keys.trail(u.task_id)],
                [
                    worker_id,
                    u.task_id,
                    u.delivery,
                    bounds.max_lines,
                    bounds.max_bytes,
                    u.dropped,
                    u.progress or "",
                    *u.lines,
                ],
            )
        )
    replies = await run_batch(session.client, calls)
    return [int(reply) == 1 for reply in replies]


async def get_report(session: Session, task_id: str, queue: str) -> TaskReport | None:
    """The trail of the task's current run: one written by an earlier run of the id
    (another enqueue nonce than the stored record's) is not this task's."""
    keys = session.keys.queue(queue)
    async with session.client.pipeline(transaction=False) as pipe:
        pipe.hget(keys.key("tasks"), task_id)
        pipe.hgetall(keys.trail(task_id))
        raw, trail = await pipe.execute()
    if not trail:
        return None
    if parse_record(raw) is not None:
        nonce = raw.split(b"|", len(RECORD_FIELDS))[RECORD_FIELDS.index("nonce")]
        if trail.get(b"n") != nonce:
            return None
    text = trail.get(b"log", b"")
    return TaskReport(
        progress=decode_progress(trail.get(b"p")),
        logs=TaskLogs(
            lines=decode_lines([x for x in text.split(TRAIL_LINE_END.encode()) if x]),
            dropped=int(trail.get(b"dropped", b"0") or 0),
        ),
    )
