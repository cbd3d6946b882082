"""The task message: what a producer hands to a broker and a broker hands to a worker.

A message has two parts. ``payload`` holds the call's arguments, encoded by the
serializer named in ``serializer`` (the name travels with every message, so a worker can
refuse formats it does not accept). Everything else is *envelope*: plain JSON that any
broker can store and any tool can read without trusting the payload.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any

from .flow import Flow

__all__ = ["MalformedMessageError", "TaskMessage", "new_task_id", "now_ms"]


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (the unit of every rediq deadline)."""
    return time.time_ns() // 1_000_000


def new_task_id() -> str:
    """A fresh task id: 32 lowercase hex digits (128 random bits)."""
    return os.urandom(16).hex()


class MalformedMessageError(ValueError):
    """An envelope read back from a broker is not a valid rediq envelope."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskMessage:
    """One enqueued task call. ``headers`` may be extended by ``before_task_enqueue`` hooks
    (before the envelope is first encoded: :meth:`envelope` encodes once per message)."""

    id: str
    name: str
    queue: str
    payload: bytes
    serializer: str
    priority: int
    max_retries: int
    timeout_ms: int | None
    result_ttl_s: int
    groups: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    eta_ms: int | None = None
    #: Ready this long after the broker stored it (the broker's clock; ``eta_ms`` is an
    #: absolute time instead). At most one of the two is set.
    delay_ms: int | None = None
    enqueued_at_ms: int = field(default_factory=now_ms)
    #: HMAC signature (``rediq_core.signing``); empty when the producer does not sign.
    signature: str = ""
    #: The limits the broker applies to this task (``rediq_core.flow``), or None. In the
    #: envelope it comes first, so a broker sees whether a task has any without parsing.
    flow: Flow | None = None
    _envelope: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def envelope(self) -> bytes:
        """The message without its payload, as compact JSON (encoded once per message)."""
        envelope = self._envelope
        if envelope is None:
            fields: dict[str, Any] = {}
            if self.flow is not None:
                fields["flow"] = self.flow.to_json()
            fields.update((name, getattr(self, name)) for name in ENVELOPE_FIELDS)
            fields["groups"] = list(self.groups)
            envelope = json.dumps(fields, separators=(",", ":")).encode()
            object.__setattr__(self, "_envelope", envelope)
        return envelope

    @classmethod
    def from_parts(cls, task_id: str, envelope: bytes, payload: bytes) -> TaskMessage:
        """Rebuild a message from what :meth:`envelope` wrote; raise on anything else."""
        try:
            fields: dict[str, Any] = json.loads(envelope)
            if not isinstance(fields, dict):
                raise TypeError("envelope is not a JSON object")
            fields["groups"] = tuple(fields.get("groups", ()))
            if "flow" in fields:
                fields["flow"] = Flow.from_json(fields["flow"])
            message = cls(id=task_id, payload=payload, **fields)
        except (TypeError, ValueError) as exc:
            raise MalformedMessageError(f"task {task_id}: malformed envelope: {exc}") from exc
        if not (
            isinstance(message.name, str)
            and isinstance(message.priority, int)
            and isinstance(message.serializer, str)
            and isinstance(message.signature, str)
            and isinstance(message.headers, dict)
            and isinstance(message.max_retries, int)
            and isinstance(message.result_ttl_s, int)
            and isinstance(message.queue, str)
        ):
            raise MalformedMessageError(f"task {task_id}: malformed envelope: bad field types")
        return message


#: Every field but ``id`` (the broker's key), ``payload`` (stored apart, opaque) and
#: ``flow`` (written first, and only when set).
ENVELOPE_FIELDS = tuple(
    f.name for f in fields(TaskMessage) if f.name not in ("id", "payload", "flow") and f.init
)
