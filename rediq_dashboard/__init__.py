"""A web dashboard for rediq (``pip install 'rediq[dashboard]'``).

``rediq dashboard APP`` (or ``--redis-url URL``) serves it with uvicorn on 127.0.0.1:8181;
``create_dashboard(app)`` returns the Starlette application to mount inside your own
Starlette or FastAPI application::

    from rediq_dashboard import basic_auth, create_dashboard

    api.mount("/rediq", create_dashboard(app, auth=basic_auth("admin", secret)))

Pages are rendered on the server (Jinja2, autoescaped) with a little plain JavaScript;
every asset is served from the package. It reads and operates queues only through the
control API (``app.control``). Every change is a POST carrying a CSRF token; a read-only
dashboard refuses them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_dashboard
    from .security import Auth, basic_auth

__all__ = ["EXTRA", "Auth", "basic_auth", "create_dashboard"]

#: The pip command that enables this plugin.
EXTRA = "pip install 'rediq[dashboard]'"


def __getattr__(name: str) -> Any:
    """Import Starlette only when the dashboard is used (``import rediq_dashboard`` is
    free, so the plugin can load, and report itself unavailable, without the extra)."""
    if name == "create_dashboard":
        from .app import create_dashboard

        return create_dashboard
    if name in ("Auth", "basic_auth"):
        from . import security

        return getattr(security, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
