"""Conversions between what the scripts store and the broker contract's records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from rediq_core.broker import FailedAttempt, TaskError, TaskRecord, TaskState
from rediq_core.message import MalformedMessageError, TaskMessage

from .layout import Record

__all__ = [
    "decode_attempts",
    "decode_error",
    "encode_error",
    "envelope_fields",
    "live_record",
    "result_record",
    "text",
]

_LIVE_STATES = {
    "pending": TaskState.PENDING,
    "waiting": TaskState.WAITING,
    "limited": TaskState.LIMITED,
    "scheduled": TaskState.SCHEDULED,
    "active": TaskState.ACTIVE,
    "failed": TaskState.FAILED,
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


def _attempt(data: object) -> FailedAttempt | None:
    if not isinstance(data, dict):
        return None
    number, at, worker = data.get("attempt"), data.get("at"), data.get("worker")
    return FailedAttempt(
        number=number if isinstance(number, int) else 0,
        failed_at_ms=at if isinstance(at, int) else None,
        worker=worker if isinstance(worker, str) and worker else None,
        error=TaskError(
            str(data.get("type", "")), str(data.get("message", "")), str(data.get("traceback", ""))
        ),
    )


def decode_attempts(items: Iterable[bytes | str]) -> tuple[FailedAttempt, ...]:
    """The kept failed attempts (``QueueKeys.attempts``: one JSON object each), oldest
    first; unreadable items are left out."""
    found = []
    for item in items:
        raw = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        try:
            attempt = _attempt(json.loads(raw))
        except ValueError:
            continue
        if attempt is not None:
            found.append(attempt)
    return tuple(found)


def _stored_attempts(raw: bytes | None) -> tuple[FailedAttempt, ...]:
    """The attempts a result hash holds (a JSON array of the kept list's items)."""
    if not raw:
        return ()
    try:
        items = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(a for a in map(_attempt, items) if a is not None)


def _int(raw: bytes | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _groups(value: object) -> tuple[str, ...]:
    return tuple(str(g) for g in value) if isinstance(value, list) else ()


def envelope_fields(raw: bytes | None) -> dict[str, object]:
    """The fields of an envelope (JSON object) as stored in a result hash; empty if it is
    missing or not a JSON object."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text_field(envelope: Mapping[str, object], name: str) -> str | None:
    value = envelope.get(name)
    return value if isinstance(value, str) and value else None


def _int_field(envelope: Mapping[str, object], name: str) -> int | None:
    value = envelope.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def live_record(
    task_id: str,
    queue: str,
    record: Record | None,
    error: bytes | None = None,
    dead_at: float | None = None,
    deadline: float | None = None,
    attempts: Iterable[bytes | str] = (),
) -> TaskRecord | None:
    """A record from a task's record in the ``tasks`` hash (``layout.Record``) and its
    last error (the ``errors`` hash); ``attempts`` the kept failed attempts' errors.

    ``dead_at`` is the score of a dead letter; ``deadline`` the due time of a scheduled
    task, or the deadline of the holder of an active task's lease (``holders`` score).
    """
    if record is None:
        return None
    state = _LIVE_STATES.get(record.fields.get("state", ""))
    if state is None:
        return None
    message: TaskMessage | None
    try:
        message = TaskMessage.from_parts(task_id, record.envelope, record.payload)
    except MalformedMessageError:
        message = None
    return TaskRecord(
        id=task_id,
        queue=queue,
        state=state,
        message=message,
        retried=record.number("retried"),
        deliveries=record.number("deliveries"),
        worker=record.fields.get("worker") or None,
        error=decode_error(error),
        serializer=message.serializer if message else None,
        finished_at_ms=int(dead_at) if dead_at is not None and state is TaskState.FAILED else None,
        name=message.name if message else None,
        priority=message.priority if message else record.number("priority"),
        groups=message.groups if message else (),
        enqueued_at_ms=message.enqueued_at_ms if message else None,
        started_at_ms=record.number("started") or None,
        due_at_ms=(
            int(deadline) if deadline is not None and state is TaskState.SCHEDULED else None
        ),
        lease_deadline_ms=(
            int(deadline) if deadline is not None and state is TaskState.ACTIVE else None
        ),
        failed_attempts=decode_attempts(attempts),
    )


def result_record(task_id: str, queue: str, fields: Mapping[bytes, bytes]) -> TaskRecord | None:
    """A record from a finished task's result hash (name, serializer, priority, groups and
    enqueue time come from the task's envelope, which it holds as it was stored)."""
    try:
        state = TaskState(text(fields.get(b"state")) or "")
    except ValueError:
        return None
    envelope = envelope_fields(fields.get(b"envelope"))
    return TaskRecord(
        id=task_id,
        queue=queue,
        state=state,
        retried=_int(fields.get(b"retried")),
        deliveries=_int(fields.get(b"deliveries")),
        worker=text(fields.get(b"worker")) or None,
        result=fields.get(b"result"),
        error=decode_error(fields.get(b"error")),
        serializer=_text_field(envelope, "serializer"),
        finished_at_ms=_int(fields.get(b"finished_at")) or None,
        name=_text_field(envelope, "name"),
        priority=_int_field(envelope, "priority"),
        groups=_groups(envelope.get("groups")),
        enqueued_at_ms=_int_field(envelope, "enqueued_at_ms"),
        started_at_ms=_int(fields.get(b"started_at")) or None,
        failed_attempts=_stored_attempts(fields.get(b"attempts")),
    )
