"""Worker logging: every record about a task carries its id and name.

:class:`TaskContextFilter` copies the running task's id and name onto each record (from
the context the worker sets, so it also works for the user's own ``logging`` calls inside
tasks, event handlers and ``run_in_current_executor`` threads). Records about a task
logged outside that context pass them as ``extra``. Three formats: ``rich`` (a TTY),
``plain`` (files, pipes) and ``json`` (one object per line, for log shippers).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from .context import _task_info

__all__ = [
    "JsonFormatter",
    "PlainFormatter",
    "TaskContextFilter",
    "setup_logging",
    "task_extra",
]

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s:%(task_label)s %(message)s"
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def task_extra(task_id: str, task_name: str) -> dict[str, str]:
    """``extra=`` for a record about a task logged outside its context."""
    return {"task_id": task_id, "task_name": task_name}


class TaskContextFilter(logging.Filter):
    """Set ``task_id``, ``task_name`` and ``task_label`` (`` name[id]`` or empty)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_id", None) is None:
            info = _task_info.get(None)
            record.task_id = info.task_id if info else None
            record.task_name = info.task_name if info else None
        task_id = getattr(record, "task_id", None)
        record.task_label = f" {getattr(record, 'task_name', '?')}[{task_id}]" if task_id else ""
        return True


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, task id/name, extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "task_id": getattr(record, "task_id", None),
            "task_name": getattr(record, "task_name", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in data and key != "task_label":
                data[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def _console_handler(fmt: str, stream: TextIO) -> logging.Handler:
    if fmt == "rich" or (fmt == "auto" and stream.isatty()):
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=Console(file=stream), rich_tracebacks=True, show_path=False
        )
        handler.setFormatter(logging.Formatter("%(name)s:%(task_label)s %(message)s"))
        return handler
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    return handler


def setup_logging(
    *,
    level: str | int = "INFO",
    file: str | None = None,
    fmt: str = "auto",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger for a worker process and return the handler.

    :param file: write plain text (or JSON lines with ``fmt="json"``) to this file
        instead of the console.
    :param fmt: ``auto``, ``rich``, ``plain`` or ``json``.
    """
    if fmt not in ("auto", "rich", "plain", "json"):
        raise ValueError(f"log format {fmt!r} is not one of auto, rich, plain, json")
    if file is not None:
        handler: logging.Handler = logging.FileHandler(file, encoding="utf-8")
        handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    else:
        handler = _console_handler(fmt, stream or sys.stderr)
    handler.addFilter(TaskContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
