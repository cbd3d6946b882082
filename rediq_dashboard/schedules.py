"""The schedules page (``/schedules``) and its actions: pause, resume and trigger a cron
schedule now, through ``app.cron_control`` (the schedules stored in the broker, as
``rediq cron`` lists them; a run triggered here goes through the app's producer pipeline
like every message)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from rediq_core.errors import UnknownNameError
from rediq_core.roles import MissingRoleError, Role, supports

from .pages import Page

if TYPE_CHECKING:
    from rediq_core.app import Rediq

    from .app import Dashboard

__all__ = ["page", "pause", "resume", "trigger"]

PATH = "/schedules"


def page(board: Dashboard) -> Page:
    async def endpoint(request: Request) -> Response:
        if not supports(board.app.get_broker(), Role.CRON):
            return board.render(request, "schedules.html", schedules=None)
        return board.render(
            request,
            "schedules.html",
            schedules=await board.app.cron_control.list(),
            refresh=board.refresh_s,
        )

    return endpoint


def _name(form: FormData) -> str:
    return str(form.get("schedule", ""))


async def pause(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    name = _name(form)
    try:
        await app.cron_control.pause(name)
    except (UnknownNameError, MissingRoleError) as exc:
        return PATH, f"nothing paused: {exc}"
    return PATH, f"schedule {name} paused: its ticks pass without runs until resumed"


async def resume(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    name = _name(form)
    try:
        await app.cron_control.resume(name)
    except (UnknownNameError, MissingRoleError) as exc:
        return PATH, f"nothing resumed: {exc}"
    return PATH, f"schedule {name} resumed"


async def trigger(app: Rediq, request: Request, form: FormData) -> tuple[str, str]:
    name = _name(form)
    try:
        task_id = await app.cron_control.trigger(name)
    except (UnknownNameError, MissingRoleError) as exc:
        return PATH, f"nothing triggered: {exc}"
    return f"/tasks/{quote(task_id, safe='')}", f"schedule {name} triggered now: this task"
