"""The pages (GET): overview, queue, dead letters, task, workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rediq_core.broker import TaskRecord, TaskState
from rediq_core.errors import TaskNotFoundError
from rediq_core.roles import Role, supports
from rediq_core.scaling import DEFAULT_TARGET_DRAIN_S, DEFAULT_WINDOW_MINUTES
from rediq_core.workflow_records import StepLink
from rediq_core.workflows import workflow_state

from .charts import SPANS, run_time_chart, span_of, throughput_chart
from .present import CHART_MINUTES, chart, decoded_call, decoded_result

if TYPE_CHECKING:
    from .app import Dashboard

__all__ = [
    "LISTED_STATES",
    "dead_letters",
    "overview",
    "queue",
    "scaling",
    "task",
    "unknown_queue",
    "workers",
    "workflow",
]

Page = Callable[[Request], Awaitable[Response]]
#: The states a queue page lists (finished tasks are found by id).
LISTED_STATES = (
    TaskState.PENDING,
    TaskState.WAITING,
    TaskState.LIMITED,
    TaskState.SCHEDULED,
    TaskState.ACTIVE,
    TaskState.FAILED,
)


def overview(board: Dashboard) -> Page:
    async def page(request: Request) -> Response:
        overviews = await board.app.control.overview(minutes=CHART_MINUTES)
        return board.render(
            request,
            "overview.html",
            queues=overviews,
            workers=await board.app.control.workers(),
            chart=chart(overviews),
            refresh=board.refresh_s,
        )

    return page


def workers(board: Dashboard) -> Page:
    async def page(request: Request) -> Response:
        return board.render(
            request,
            "workers.html",
            workers=await board.app.control.workers(),
            refresh=board.refresh_s,
        )

    return page


async def unknown_queue(board: Dashboard, request: Request) -> Response | None:
    """The 404 page if the path names a queue never seen (a typo, usually), else None."""
    name = request.path_params["queue"]
    if await board.app.control.queue_known(name):
        return None
    return board.render(
        request,
        "missing.html",
        status_code=404,
        what=f"queue {name}",
        why="no task was ever sent to it and it holds nothing",
    )


def queue(board: Dashboard) -> Page:
    async def page(request: Request) -> Response:
        if missing := await unknown_queue(board, request):
            return missing
        name = request.path_params["queue"]
        try:
            state = TaskState(request.query_params.get("state", "pending"))
        except ValueError:
            state = TaskState.PENDING
        if state not in LISTED_STATES:
            state = TaskState.PENDING
        cursor = request.query_params.get("cursor") or None
        listing = await board.app.control.tasks(name, state, limit=board.page_size, cursor=cursor)
        limits = None
        if supports(board.app.get_broker(), Role.LIMITS):
            [limits] = await board.app.control.limits(name)
        span = span_of(request.query_params.get("span"))
        since, step = SPANS[span]
        history = await board.app.control.history(name, since=since, step=step)
        return board.render(
            request,
            "queue.html",
            queue=await board.app.control.queue(name),
            spans=list(SPANS),
            span=span,
            throughput=throughput_chart(history),
            run_time=run_time_chart(history),
            scaling=await board.app.control.scaling(name),
            limits=limits,
            state=state.value,
            states=[s.value for s in LISTED_STATES],
            page=listing,
            cursor=cursor,
        )

    return page


def dead_letters(board: Dashboard) -> Page:
    async def page(request: Request) -> Response:
        if missing := await unknown_queue(board, request):
            return missing
        name = request.path_params["queue"]
        cursor = request.query_params.get("cursor") or None
        listing = await board.app.control.dead_letters(name, limit=board.page_size, cursor=cursor)
        return board.render(
            request,
            "dead.html",
            queue=await board.app.control.queue(name),
            page=listing,
            cursor=cursor,
        )

    return page


def task(board: Dashboard) -> Page:
    async def page(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        record = await board.app.control.task(task_id, request.query_params.get("queue"))
        if record is None:
            return board.render(request, "missing.html", status_code=404, what=f"task {task_id}")
        args, kwargs = decoded_call(board.app, record)
        report = await board.app.control.report(record.id, record.queue)
        return board.render(
            request,
            "task.html",
            task=record,
            progress=report.progress if report else None,
            logs=report.logs if report else None,
            # a task that may still run reloads its progress and logs while shown
            refresh=board.refresh_s if record.state.unfinished else 0,
            args=args,
            kwargs=kwargs,
            result=decoded_result(board.app, record),
            headers=record.message.headers if record.message else {},
            step=_step_of(record),
        )

    return page


def _step_of(record: TaskRecord) -> StepLink | None:
    """The workflow step a task is, if it is one (its link, from its message)."""
    try:
        return StepLink.of(record.message) if record.message else None
    except ValueError:
        return None


def workflow(board: Dashboard) -> Page:
    async def page(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        try:
            handle = await board.app.workflow(workflow_id)
        except TaskNotFoundError:
            return board.render(
                request,
                "missing.html",
                status_code=404,
                what=f"workflow {workflow_id}",
                why="it was never enqueued, or its record expired with its results",
            )
        steps = await handle.status()
        return board.render(
            request,
            "workflow.html",
            workflow=handle.record,
            steps=steps,
            state=workflow_state(steps),
            refresh=board.refresh_s,
        )

    return page


def scaling(board: Dashboard) -> Page:
    """``/api/scaling/{queue}``: the queue's autoscaling signal as JSON (for KEDA's
    metrics-api scaler: ``valueLocation: desired_workers``). Query parameters
    ``target_drain_s`` and ``window_minutes`` as ``app.control.scaling()`` takes them."""

    async def endpoint(request: Request) -> Response:
        name = request.path_params["queue"]
        if not await board.app.control.queue_known(name):
            return JSONResponse({"error": f"no queue {name!r}: no task was ever sent to it"}, 404)
        try:
            target = float(request.query_params.get("target_drain_s", DEFAULT_TARGET_DRAIN_S))
            window = int(request.query_params.get("window_minutes", DEFAULT_WINDOW_MINUTES))
            found = await board.app.control.scaling(
                name, target_drain_s=target, window_minutes=window
            )
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(found.as_json(), headers={"Cache-Control": "no-store"})

    return endpoint
