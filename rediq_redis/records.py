"""Conversions between what the scripts store and the broker contract's records."""

from __future__ import annotations

import json
from collections.abc import Mapping

from rediq_core.broker import TaskError, TaskRecord, TaskState
from rediq_core.message import MalformedMessageError, TaskMessage

__all__ = ["decode_error", "encode_error", "live_record", "result_record", "text"]

_LIVE_STATES = {
    b"pending": TaskState.PENDING,
    b"scheduled": TaskState.SCHEDULED,
    b"active": TaskState.ACTIVE,
    b"failed": TaskState.FAILED,
}


def text(value: object) -> str | None:
    """A reply element as text (bytes are decoded as UTF-8; None stays None)."""
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def encode_error(error: TaskError) -> str:
    return json.dumps({"type": error.type, "message": error.message, "traceback": error.traceback})


def decode_error(raw: bytes | None) -> TaskError | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return TaskError(str(data["type"]), str(data["message"]), str(data.get("traceback", "")))
    except (ValueError, KeyError, TypeError):
        return TaskError("UnreadableError", text(raw) or "")


def _int(raw: bytes | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _groups(raw: bytes | None) -> tuple[str, ...]:
    try:
        value = json.loads(raw or b"[]")
    except ValueError:
        return ()
    return tuple(str(g) for g in value) if isinstance(value, list) else ()


def live_record(
    task_id: str,
    queue: str,
    fields: Mapping[str, bytes | None],
    dead_at: float | None = None,
    score: float | None = None,
) -> TaskRecord | None:
    """A record from the per-queue hashes (``state``, ``envelope``, ``payload``, ...).

    ``score`` is the task's score in its state's set: the due time of a scheduled task,
    the lease deadline of an active one.
    """
    state = _LIVE_STATES.get(fields.get("state") or b"")
    if state is None:
        return None
    message: TaskMessage | None = None
    envelope, payload = fields.get("envelope"), fields.get("payload")
    if envelope is not None and payload is not None:
        try:
            message = TaskMessage.from_parts(task_id, envelope, payload)
        except MalformedMessageError:
            message = None
    return TaskRecord(
        id=task_id,
        queue=queue,
        state=state,
        message=message,
        retried=_int(fields.get("retried")),
        deliveries=_int(fields.get("deliveries")),
        worker=text(fields.get("owner")) or None,
        error=decode_error(fields.get("error")),
        serializer=message.serializer if message else None,
        finished_at_ms=int(dead_at) if dead_at is not None else None,
        name=message.name if message else None,
        priority=message.priority if message else None,
        groups=message.groups if message else (),
        enqueued_at_ms=message.enqueued_at_ms if message else None,
        started_at_ms=_int(fields.get("started")) or None,
        due_at_ms=int(score) if score is not None and state is TaskState.SCHEDULED else None,
        lease_deadline_ms=(int(score) if score is not None and state is TaskState.ACTIVE else None),
    )


def result_record(task_id: str, queue: str, fields: Mapping[bytes, bytes]) -> TaskRecord | None:
    """A record from a finished task's result hash."""
    try:
        state = TaskState(text(fields.get(b"state")) or "")
    except ValueError:
        return None
    return TaskRecord(
        id=task_id,
        queue=queue,
        state=state,
        retried=_int(fields.get(b"retried")),
        deliveries=_int(fields.get(b"deliveries")),
        worker=text(fields.get(b"worker")) or None,
        result=fields.get(b"result"),
        error=decode_error(fields.get(b"error")),
        serializer=text(fields.get(b"serializer")) or None,
        finished_at_ms=_int(fields.get(b"finished_at")) or None,
        name=text(fields.get(b"name")) or None,
        priority=_int(fields.get(b"priority")) if b"name" in fields else None,
        groups=_groups(fields.get(b"groups")),
        enqueued_at_ms=_int(fields.get(b"enqueued_at")) or None,
        started_at_ms=_int(fields.get(b"started_at")) or None,
    )
