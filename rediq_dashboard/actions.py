"""The changes (POST only): each checks read-only mode, the CSRF token and that the queue
it names was ever seen (404 otherwise: a typo must not create a paused queue), calls the
control API, and redirects (303) to a page with a notice saying what happened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from rediq_core.broker import CancelOutcome
from rediq_core.errors import AmbiguousWorkerError, TaskNotFoundError

from . import schedules
from .pages import LISTED_STATES
from .security import CSRF_FIELD, check_csrf

if TYPE_CHECKING:
    from rediq_core.app import Rediq

    from .app import Dashboard

__all__ = ["routes"]

#: An action returns the dashboard-relative path to show next and a notice.
Action = Callable[["Rediq", Request, FormData], Awaitable[tuple[str, str]]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(board: Dashboard, action: Action) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if board.read_only:
            return PlainTextResponse("this dashboard is read-only", status_code=403)
        form = await request.form()
        refused = check_csrf(request, str(form.get(CSRF_FIELD, "")))
        if refused:
            return PlainTextResponse(refused, status_code=403)
        queue = request.path_params.get("queue")
        if queue is not None and not await board.app.control.queue_known(queue):
            return PlainTextResponse(f"no queue {queue}: nothing changed", status_code=404)
        path, notice = await action(board.app, request, form)
        root = request.scope.get("root_path", "")
        separator = "&" if "?" in path else "?"
        return RedirectResponse(
            f"{root}{path}{separator}{urlencode({'notice': notice})}", status_code=303
        )

    return endpoint


def _queue_path(queue: str, suffix: str = "") -> str:
    return f"/queues/{quote(queue, safe='')}{suffix}"


def _ids(form: FormData) -> list[str] | None:
    """The ticked task ids of a bulk form, or None for "all" (``all=yes``)."""
    if form.get("all") == "yes":
        return None
    return [str(value) for value in form.getlist("task_id")]


async def pause(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    queue = request.path_params["queue"]
    done = await control.pause(queue)
    return _queue_path(queue), f"queue {queue} paused" if done else "already paused"


async def resume(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    queue = request.path_params["queue"]
    done = await control.resume(queue)
    return _queue_path(queue), f"queue {queue} resumed" if done else "it was not paused"


async def purge(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    queue = request.path_params["queue"]
    if form.get("confirm") != queue:
        return _queue_path(queue), "nothing purged: type the queue's name to confirm"
    removed = await control.purge(queue)
    return _queue_path(queue), f"purged {removed} waiting and dead tasks from {queue}"


async def forget(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    queue = request.path_params["queue"]
    if not await control.forget(queue):
        return _queue_path(queue), f"queue {queue} not forgotten: it holds tasks"
    return "/", f"queue {queue} forgotten"


async def requeue_dead(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    queue, ids = request.path_params["queue"], _ids(form)
    if ids == []:
        return _queue_path(queue, "/dead"), "nothing selected"
    moved = await control.requeue_dead(queue, ids)
    return _queue_path(queue, "/dead"), f"requeued {moved} dead letters"


async def delete_dead(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    queue, ids = request.path_params["queue"], _ids(form)
    if ids == []:
        return _queue_path(queue, "/dead"), "nothing selected"
    deleted = await control.delete_dead(queue, ids)
    return _queue_path(queue, "/dead"), f"deleted {deleted} dead letters"


CANCEL_SAID = {
    CancelOutcome.CANCELLED: "cancelled",
    CancelOutcome.REQUESTED: "running: its worker was asked to cancel it",
    CancelOutcome.FINISHED: "already finished, nothing to cancel",
    CancelOutcome.NOT_FOUND: "not found",
}


async def cancel(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    task_id = request.path_params["task_id"]
    outcome = await control.cancel(task_id)
    return f"/tasks/{quote(task_id, safe='')}", f"task {task_id}: {CANCEL_SAID[outcome]}"


async def cancel_row(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    """Cancel one task from a row of the queue page; back to the same tab."""
    queue, task_id = request.path_params["queue"], str(form.get("task_id", ""))
    state = str(form.get("state", ""))
    tab = f"?state={state}" if state in {s.value for s in LISTED_STATES} else ""
    if not task_id:
        return _queue_path(queue, tab), "nothing selected"
    outcome = await app.control.cancel(task_id, queue)
    return _queue_path(queue, tab), f"task {task_id}: {CANCEL_SAID[outcome]}"


async def stop_worker(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    """Ask one worker (by its id) to shut down gracefully."""
    worker_id = request.path_params["worker_id"]
    try:
        asked = await app.control.stop_worker(worker_id)
    except AmbiguousWorkerError as exc:
        return "/workers", f"nothing asked: {exc}"
    if not asked:
        return "/workers", f"no registered worker {worker_id}: nothing asked"
    return "/workers", (
        f"asked worker {worker_id} to stop: it finishes its running tasks, then exits"
    )


async def delete(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    task_id = request.path_params["task_id"]
    record = await control.task(task_id)
    if record is None or not await control.delete(task_id, record.queue):
        return f"/tasks/{quote(task_id, safe='')}", (
            f"task {task_id} not deleted (unknown, or running: cancel it first)"
        )
    return _queue_path(record.queue), f"task {task_id} deleted"


async def requeue(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    control = app.control
    task_id = request.path_params["task_id"]
    record = await control.task(task_id)
    moved = await control.requeue_dead(record.queue, [task_id]) if record else 0
    said = "requeued" if moved else "not requeued (only dead letters can be requeued)"
    return f"/tasks/{quote(task_id, safe='')}", f"task {task_id} {said}"


async def cancel_workflow(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    workflow_id = request.path_params["workflow_id"]
    path = f"/workflows/{quote(workflow_id, safe='')}"
    try:
        handle = await app.workflow(workflow_id)
    except TaskNotFoundError:
        return path, f"workflow {workflow_id} not found"
    await handle.cancel()
    return path, f"workflow {workflow_id}: every step that had not ended was cancelled"


ACTIONS: list[tuple[str, Action]] = [
    ("/queues/{queue}/pause", pause),
    ("/queues/{queue}/resume", resume),
    ("/queues/{queue}/purge", purge),
    ("/queues/{queue}/forget", forget),
    ("/queues/{queue}/dead/requeue", requeue_dead),
    ("/queues/{queue}/dead/delete", delete_dead),
    ("/queues/{queue}/cancel", cancel_row),
    ("/tasks/{task_id}/cancel", cancel),
    ("/tasks/{task_id}/delete", delete),
    ("/tasks/{task_id}/requeue", requeue),
    ("/workflows/{workflow_id}/cancel", cancel_workflow),
    ("/workers/{worker_id}/stop", stop_worker),
    ("/schedules/pause", schedules.pause),
    ("/schedules/resume", schedules.resume),
    ("/schedules/trigger", schedules.trigger),
]


def routes(board: Dashboard) -> list[tuple[str, Endpoint]]:
    """Every action as a POST endpoint, guarded."""
    return [(path, _guarded(board, action)) for path, action in ACTIONS]
