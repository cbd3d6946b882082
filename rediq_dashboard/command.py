"""``rediq dashboard APP | --redis-url URL``: serve the dashboard with uvicorn."""

from __future__ import annotations

import rich_click as click

from rediq_core import defaults

from . import settings

__all__ = ["dashboard"]

ENV_AUTH = settings.ENV_AUTH


@click.command()
@click.argument("app_spec", metavar="[APP]", required=False, envvar=defaults.ENV_APP)
@click.option(
    "--redis-url",
    envvar=defaults.ENV_REDIS_URL,
    default=None,
    help="Broker URL, without the app's code (env REDIQ_REDIS_URL).",
)
@click.option(
    "--namespace",
    envvar=defaults.ENV_NAMESPACE,
    default=None,
    help=f"Key namespace (default: the app's, or {defaults.DEFAULT_NAMESPACE!r}).",
)
@click.option(
    "--host",
    default=settings.DASHBOARD_HOST,
    show_default=True,
    help="Address to bind (loopback by default; put a TLS proxy in front before exposing it).",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=settings.DASHBOARD_PORT,
    show_default=True,
)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option(
    "--basic-auth",
    "credentials",
    envvar=ENV_AUTH,
    default=None,
    metavar="USER:PASSWORD",
    help=f"Require HTTP basic auth (env {ENV_AUTH}, which keeps it off `ps`).",
)
@click.option("--title", default="rediq", show_default=True, help="Shown in the header.")
@click.option(
    "--refresh",
    type=click.IntRange(min=0),
    default=settings.DASHBOARD_REFRESH_S,
    show_default=True,
    help="Seconds between updates of the overview (0: never).",
)
@click.option(
    "--search-scan",
    type=click.IntRange(min=1),
    default=settings.DASHBOARD_SEARCH_SCAN,
    show_default=True,
    help="Task records a search by name or arguments reads per page (at most).",
)
def dashboard(
    app_spec: str | None,
    redis_url: str | None,
    namespace: str | None,
    host: str,
    port: int,
    read_only: bool,
    credentials: str | None,
    title: str,
    refresh: int,
    search_scan: int,
) -> None:
    """Serve the web dashboard of APP (module:attribute) or of --redis-url URL."""
    import uvicorn

    from rediq_core.cli.target import Target, UsageFailure

    from .app import create_dashboard
    from .security import basic_auth

    try:
        app = Target(app_spec, redis_url, namespace, as_json=False).app()
    except UsageFailure as exc:
        raise click.UsageError(str(exc)) from None
    auth = None
    if credentials is not None:
        user, sep, password = credentials.partition(":")
        if not sep or not user or not password:
            raise click.UsageError("--basic-auth takes USER:PASSWORD")
        auth = basic_auth(user, password)
    board = create_dashboard(
        app,
        read_only=read_only,
        auth=auth,
        title=title,
        refresh_s=refresh,
        search_scan=search_scan,
    )
    click.echo(
        f"rediq dashboard on http://{host}:{port}/{' (read-only)' if read_only else ''}", err=True
    )
    uvicorn.run(board, host=host, port=port, log_level="warning")
