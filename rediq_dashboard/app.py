"""``create_dashboard(app)``: the Starlette application, its routes and how it renders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from . import actions, pages, present, settings
from .security import CSRF_FIELD, Auth, csrf_token, set_csrf_cookie

if TYPE_CHECKING:
    from rediq_core.app import Rediq

__all__ = ["Dashboard", "create_dashboard"]

HERE = Path(__file__).parent
#: Every page: only the package's own script and style run, no page may frame it (no
#: clickjacking of its buttons), and it is never cached or sniffed.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " connect-src 'self';"
    " img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Dashboard:
    """What every page handler needs: the rediq app and how the dashboard is configured."""

    app: Rediq
    read_only: bool
    title: str
    page_size: int
    refresh_s: int
    templates: Jinja2Templates

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> Response:
        token, new = csrf_token(request)
        response = self.templates.TemplateResponse(
            request,
            template,
            {
                "root": request.scope.get("root_path", ""),
                "title": self.title,
                "read_only": self.read_only,
                "csrf_field": CSRF_FIELD,
                "csrf_token": token,
                "notice": request.query_params.get("notice", ""),
                "stamp": present.stamp,
                "age": present.age,
                **context,
            },
            status_code=status_code,
        )
        if new:
            set_csrf_cookie(response, request, token)
        response.headers.update(PAGE_HEADERS)
        return response


class AuthGuard:
    """Runs the auth hook before every request (pages, actions and assets alike)."""

    def __init__(self, app: ASGIApp, auth: Auth | None) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.auth is not None:
            refusal = await self.auth(Request(scope, receive))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_dashboard(
    app: Rediq,
    *,
    read_only: bool = False,
    auth: Auth | None = None,
    title: str = "rediq",
    page_size: int = settings.DASHBOARD_PAGE_SIZE,
    refresh_s: int = settings.DASHBOARD_REFRESH_S,
) -> Starlette:
    """The dashboard of ``app``'s broker as an ASGI application.

    :param app: the rediq app whose queues are shown (its code is not needed: a
        ``Rediq(redis_url=..., namespace=...)`` will do; arguments and results are decoded
        only with serializers that do not run code on load).
    :param read_only: show everything, change nothing (every POST answers 403).
    :param auth: an auth hook run before every request, e.g. :func:`basic_auth`.
    :param title: shown in the page header.
    :param page_size: tasks per page in listings.
    :param refresh_s: the overview and workers pages reload their content this often
        (plain ``fetch``, only while the browser tab is visible; 0: never).
    """
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True
    )
    templates = Jinja2Templates(env=environment)
    board = Dashboard(app, read_only, title, page_size, refresh_s, templates)
    routes = [
        Route("/", pages.overview(board), name="overview"),
        Route("/workers", pages.workers(board), name="workers"),
        Route("/queues/{queue}", pages.queue(board), name="queue"),
        Route("/queues/{queue}/dead", pages.dead_letters(board), name="dead_letters"),
        Route("/tasks/{task_id}", pages.task(board), name="task"),
        Route("/workflows/{workflow_id}", pages.workflow(board), name="workflow"),
        Route("/api/scaling/{queue}", pages.scaling(board), name="scaling"),
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in actions.routes(board)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(AuthGuard, auth=auth)])
