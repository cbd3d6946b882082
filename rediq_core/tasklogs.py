"""A running task's progress and log lines (docs/progress-and-logs.md).

The worker gives every attempt a :class:`TaskTrail`: :func:`~rediq_core.context.set_progress`
writes its progress there, and the worker's log handler (on the root logger while the
worker runs) its log records, found through the attempt's context variable, so the
tasks of one worker never mix. A trail is bounded locally (the last lines within a byte
cap) and sent to the broker in the lease renewal round and at settlement
(:mod:`rediq_core.worker.trails`); the broker keeps the last ``max_lines`` within
``max_bytes`` with the task, for as long as its result.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PROGRESS_MESSAGE_MAX",
    "LogBounds",
    "TaskLogLine",
    "TaskLogs",
    "TaskProgress",
    "TaskReport",
    "TaskTrail",
    "TrailUpdate",
    "decode_line",
    "decode_progress",
    "encode_line",
    "encode_progress",
    "progress_detail",
]

#: The longest progress message, in characters.
PROGRESS_MESSAGE_MAX = 200
#: A log line's message is cut to this many characters (with ``…``).
LINE_MESSAGE_MAX = 4_000


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """How far a running task says it is: ``fraction`` in [0, 1], a short ``message``,
    and when the task reported it (epoch ms, the worker's clock)."""

    fraction: float
    message: str
    updated_at_ms: int

    @property
    def updated_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.updated_at_ms / 1000, dt.UTC)


@dataclass(frozen=True, slots=True)
class TaskLogLine:
    """One log record emitted while the task ran: when (epoch ms), its level name, its
    logger, its formatted message, and the attempt (``retried`` at the time: 0 first)."""

    at_ms: int
    level: str
    logger: str
    message: str
    attempt: int = 0

    @property
    def at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.at_ms / 1000, dt.UTC)


@dataclass(frozen=True, slots=True)
class TaskLogs:
    """A task's kept log lines, oldest first; ``dropped`` earlier lines were dropped to
    stay within the bounds (the last lines and a byte cap)."""

    lines: tuple[TaskLogLine, ...] = ()
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class TaskReport:
    """What a broker keeps of a task's reports: its last progress (or None) and logs."""

    progress: TaskProgress | None
    logs: TaskLogs


@dataclass(frozen=True, slots=True)
class LogBounds:
    """How many log lines (the last ones) and bytes (of encoded lines) a task keeps."""

    max_lines: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class TrailUpdate:
    """What a worker sends for one lease: the latest progress (encoded) if it changed,
    new encoded log lines, and how many lines it dropped locally before sending."""

    task_id: str
    queue: str
    delivery: int
    progress: str | None
    lines: tuple[str, ...]
    dropped: int


def encode_progress(progress: TaskProgress) -> str:
    return json.dumps([progress.fraction, progress.message, progress.updated_at_ms])


def progress_detail(progress: TaskProgress | None) -> str:
    """``"<percent>% <message>"``: the detail of a ``progress`` task event (the Redis
    scripts' ``progress_detail`` writes the same)."""
    if progress is None:
        return ""
    text = f"{int(progress.fraction * 100 + 0.5)}%"
    return f"{text} {progress.message}" if progress.message else text


def decode_progress(text: str | bytes | None) -> TaskProgress | None:
    if not text:
        return None
    try:
        fraction, message, at = json.loads(text)
        return TaskProgress(float(fraction), str(message), int(at))
    except (ValueError, TypeError):
        return None


def encode_line(line: TaskLogLine) -> str:
    """One line as stored: a JSON array on one line (no raw line break)."""
    return json.dumps(
        [line.at_ms, line.level, line.logger, line.message, line.attempt], ensure_ascii=False
    )


def decode_line(text: str | bytes) -> TaskLogLine | None:
    try:
        at, level, logger, message, attempt = json.loads(text)
        return TaskLogLine(int(at), str(level), str(logger), str(message), int(attempt))
    except (ValueError, TypeError):
        return None


def decode_lines(texts: Sequence[str | bytes]) -> tuple[TaskLogLine, ...]:
    return tuple(line for line in map(decode_line, texts) if line is not None)


def check_progress(fraction: object, message: object) -> tuple[float, str]:
    """Validated ``set_progress`` arguments (raises at once, saying what to pass)."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(
            f"set_progress(fraction=...) takes a number in [0, 1], not {type(fraction).__name__}"
        )
    if not (math.isfinite(fraction) and 0 <= fraction <= 1):
        raise ValueError(f"set_progress(fraction={fraction!r}): pass a number in [0, 1]")
    if not isinstance(message, str):
        raise TypeError(f"set_progress(message=...) takes a str, not {type(message).__name__}")
    if len(message) > PROGRESS_MESSAGE_MAX:
        raise ValueError(
            f"set_progress(message=...) is {len(message)} characters long; keep it within"
            f" {PROGRESS_MESSAGE_MAX} (log longer text with logging)"
        )
    return float(fraction), message


class TaskTrail:
    """One attempt's unsent progress and log lines (thread-safe: a task's code may log
    from the executor's threads). Keeps at most the bounds' lines and bytes; counts the
    lines it drops."""

    __slots__ = (
        "_bytes",
        "_dropped",
        "_lines",
        "_lock",
        "_progress",
        "attempt",
        "bounds",
        "delivery",
        "owner",
        "queue",
        "task_id",
        "used",
    )

    def __init__(
        self, task_id: str, queue: str, delivery: int, attempt: int, bounds: LogBounds
    ) -> None:
        self.task_id, self.queue, self.delivery, self.attempt = task_id, queue, delivery, attempt
        self.bounds = bounds
        #: What captures its log records (a worker's handler: with two workers in one
        #: process, each takes only its own attempts' records).
        self.owner: object = None
        self._lock = threading.Lock()
        self._lines: deque[str] = deque()
        self._bytes = 0
        self._dropped = 0
        self._progress: str | None = None
        #: Whether anything was ever reported (the settlement then tells the broker).
        self.used = False

    def set_progress(self, fraction: float, message: str) -> None:
        encoded = encode_progress(TaskProgress(fraction, message, int(time.time() * 1000)))
        with self._lock:
            self._progress, self.used = encoded, True

    def add(self, record: logging.LogRecord) -> None:
        if self.bounds.max_lines <= 0:
            return
        message = record.getMessage()
        if len(message) > LINE_MESSAGE_MAX:
            message = message[: LINE_MESSAGE_MAX - 1] + "…"
        text = encode_line(
            TaskLogLine(
                int(record.created * 1000), record.levelname, record.name, message, self.attempt
            )
        )
        size = len(text.encode()) + 1
        with self._lock:
            self.used = True
            self._lines.append(text)
            self._bytes += size
            while self._lines and (
                len(self._lines) > self.bounds.max_lines or self._bytes > self.bounds.max_bytes
            ):
                self._bytes -= len(self._lines.popleft().encode()) + 1
                self._dropped += 1

    @property
    def dirty(self) -> bool:
        return self._progress is not None or bool(self._lines) or self._dropped > 0

    def take(self) -> TrailUpdate | None:
        """What is unsent (emptying the trail), or None when nothing is."""
        with self._lock:
            if not self.dirty:
                return None
            update = TrailUpdate(
                self.task_id,
                self.queue,
                self.delivery,
                self._progress,
                tuple(self._lines),
                self._dropped,
            )
            self._lines.clear()
            self._progress, self._bytes, self._dropped = None, 0, 0
            return update
