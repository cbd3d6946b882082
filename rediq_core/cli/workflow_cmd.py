"""``rediq workflow ID``: a workflow's steps, their states and timings; ``--cancel``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import rich_click as click
from rich.table import Table

from ..errors import TaskNotFoundError
from ..workflows import StepStatus, WorkflowHandle, workflow_state
from .render import console, echo_json, stamp
from .target import CommandError, Target, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["workflow", "workflow_json"]


@click.command()
@click.argument("workflow_id")
@click.option("--cancel", is_flag=True, help="Cancel every step that has not ended.")
@control_command
def workflow(target: Target, workflow_id: str, cancel: bool) -> None:
    """A workflow's steps in order: task, queue, state, when each started and ended, and
    the error of a step that did not succeed. --cancel stops it first."""

    async def action(app: Rediq) -> tuple[WorkflowHandle[Any], list[StepStatus]]:
        try:
            handle = await app.workflow(workflow_id)
        except TaskNotFoundError as exc:
            raise CommandError(str(exc)) from None
        if cancel:
            await handle.cancel()
        return handle, await handle.status()

    handle, steps = run(target, action)
    if target.as_json:
        echo_json({"workflow": workflow_json(handle, steps)})
        return
    console().print(_table(handle, steps))


def workflow_json(handle: WorkflowHandle[Any], steps: list[StepStatus]) -> dict[str, Any]:
    return {
        "id": handle.id,
        "state": workflow_state(steps),
        "created_at_ms": handle.record.created_at_ms,
        "steps": [_step_json(s) for s in steps],
    }


def _step_json(step: StepStatus) -> dict[str, Any]:
    record, error = step.record, step.record.error if step.record else None
    return {
        "index": step.index,
        "id": step.id,
        "task": step.task_name,
        "queue": step.queue,
        "state": step.state.value if step.state else "expired",
        "started_at_ms": record.started_at_ms if record else None,
        "finished_at_ms": record.finished_at_ms if record else None,
        "error": None if error is None else {"type": error.type, "message": error.message},
    }


def _table(handle: WorkflowHandle[Any], steps: list[StepStatus]) -> Table:
    table = Table(title=f"workflow {handle.id}: {workflow_state(steps)}")
    for column in ("#", "task", "queue", "state", "started", "finished", "error"):
        table.add_column(column)
    for step in steps:
        data = _step_json(step)
        error = data["error"]
        table.add_row(
            str(step.index),
            step.task_name,
            step.queue,
            data["state"],
            stamp(data["started_at_ms"]),
            stamp(data["finished_at_ms"]),
            f"{error['type']}: {error['message']}" if error else "",
        )
    return table
