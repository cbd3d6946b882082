"""Entry point ``dashboard``: registers ``rediq dashboard`` when Starlette, uvicorn and
Jinja2 are installed; otherwise nothing but ``REDIQ_UNAVAILABLE`` (``rediq plugins``)."""

from __future__ import annotations

from rediq_core.hookspecs import RegisterCommand
from rediq_core.plugins import hookimpl

from . import EXTRA

__all__ = ["REDIQ_UNAVAILABLE"]

REDIQ_UNAVAILABLE: str | None = EXTRA
try:
    import jinja2  # noqa: F401 - the extra's dependencies
    import python_multipart  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError:
    pass
else:
    REDIQ_UNAVAILABLE = None

    @hookimpl
    def rediq_register_commands(register: RegisterCommand) -> None:
        from .command import dashboard

        register(dashboard)
