"""What a broker stores and answers about cron schedules (docs/cron.md).

A schedule's *spec* is everything needed to fire it without the app's code: the task
name and queue, the expression and zone, the serialized arguments and the task options.
Workers write specs to the broker; the CLI and the control API read them back.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .flow import Flow
from .message import TaskMessage

__all__ = [
    "CronEntry",
    "CronFire",
    "CronRegistration",
    "FireResult",
    "MissedPolicy",
    "ScheduleSpec",
]


class MissedPolicy(enum.StrEnum):
    """What a worker does at start-up about ticks missed while no worker ran."""

    SKIP = "skip"  # log how many were skipped; wait for the next tick
    RUN_ONCE = "run_once"  # run the latest missed tick once, then go on


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """One schedule as stored: JSON-safe, self-contained, versioned by its content."""

    name: str
    task: str
    queue: str
    expression: str
    timezone: str
    missed: str
    jitter_ms: int
    serializer: str
    payload: bytes
    priority: int
    retries: int
    timeout_ms: int | None
    result_ttl_s: int
    #: The runs' flow (limits, unique, expiry: ``Flow.to_json()``), or None.
    flow: dict[str, Any] | None = None

    @property
    def version(self) -> str:
        """A short digest of the spec: equal specs are the same deployment of a schedule."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        fields = asdict(self)
        fields["payload"] = base64.b64encode(self.payload).decode("ascii")
        if fields["flow"] is None:  # specs without one keep the version they had
            del fields["flow"]
        return json.dumps(fields, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ScheduleSpec:
        """Read a stored spec (fields a newer version added are ignored); ValueError if
        it is not one."""
        try:
            fields: dict[str, Any] = json.loads(raw)
            known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
            known["payload"] = base64.b64decode(known["payload"])
            return cls(**known)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a stored cron schedule spec: {exc}") from None

    def task_id(self, tick_ms: int) -> str:
        """The id of the run of tick ``tick_ms``: the same on every worker (deduplication)."""
        return f"cron:{self.name}:{tick_ms}"

    def trigger_id(self, now_ms: int) -> str:
        """The id of a run triggered by hand at ``now_ms`` (outside the ticks)."""
        return f"cron:{self.name}:now:{now_ms}"

    def message(self, task_id: str, *, tick_ms: int | None, eta_ms: int | None) -> TaskMessage:
        """The task message of one run (``tick_ms`` None for a manual trigger)."""
        headers = {"cron": self.name}
        if tick_ms is not None:
            headers["cron_tick_ms"] = str(tick_ms)
        return TaskMessage(
            id=task_id,
            name=self.task,
            queue=self.queue,
            payload=self.payload,
            serializer=self.serializer,
            priority=self.priority,
            max_retries=self.retries,
            timeout_ms=self.timeout_ms,
            result_ttl_s=self.result_ttl_s,
            headers=headers,
            eta_ms=eta_ms,
            flow=None if self.flow is None else Flow.from_json(self.flow),
        )


class FireResult(enum.StrEnum):
    FIRED = "fired"  # this call enqueued the tick's run
    ALREADY = "already"  # another worker fired this tick (or a later one) first
    PAUSED = "paused"  # the tick was consumed without a run: the schedule is paused


@dataclass(frozen=True, slots=True)
class CronFire:
    """The outcome of one fire attempt; ``previous_tick_ms`` is the tick fired before."""

    result: FireResult
    previous_tick_ms: int | None = None


@dataclass(frozen=True, slots=True)
class CronRegistration:
    """``changed``: specs written (new or different). ``conflicting``: on a refresh, names
    whose stored spec differs from the caller's (another deployment's) and was kept."""

    changed: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class CronEntry:
    """A stored schedule and its state. ``seen_ms`` is when a live worker last registered
    it (a schedule not seen for a while is *orphaned*: no live worker serves it)."""

    spec: ScheduleSpec
    last_tick_ms: int | None = None
    last_task_id: str | None = None
    paused: bool = False
    seen_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
