"""How ``rediq task`` and ``rediq top`` show a task's progress and log lines."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..tasklogs import TaskLogs, TaskProgress

__all__ = ["logs_json", "logs_table", "progress_json", "progress_text"]

_LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red", "DEBUG": "dim"}


def progress_text(progress: TaskProgress | None, width: int = 10) -> str:
    """``████░░░░░░  40% resizing``, or ``-`` (rich markup: the message is escaped)."""
    if progress is None:
        return "-"
    filled = round(progress.fraction * width)
    text = f"{'█' * filled}{'░' * (width - filled)} {progress.fraction * 100:3.0f}%"
    return f"{text} {escape(progress.message)}" if progress.message else text


def progress_json(progress: TaskProgress | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    return {
        "fraction": progress.fraction,
        "message": progress.message,
        "updated_at_ms": progress.updated_at_ms,
    }


def logs_json(logs: TaskLogs) -> dict[str, Any]:
    return {
        "dropped": logs.dropped,
        "lines": [
            {
                "at_ms": x.at_ms,
                "level": x.level,
                "logger": x.logger,
                "message": x.message,
                "attempt": x.attempt,
            }
            for x in logs.lines
        ],
    }


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def logs_table(logs: TaskLogs, task_id: str) -> Table:
    title = f"logs of task {task_id}"
    if logs.dropped:
        title += f" ({logs.dropped} earlier line(s) dropped)"
    table = Table(title=title)
    for column in ("time", "attempt", "level", "logger"):
        table.add_column(column)
    table.add_column("message", overflow="fold")
    for x in logs.lines:
        level = Text(x.level, style=_LEVEL_STYLES.get(x.level, ""))
        table.add_row(
            _clock(x.at_ms), str(x.attempt + 1), level, escape(x.logger), escape(x.message)
        )
    return table
