"""Entry point ``dashboard``: registers ``rediq dashboard`` when Starlette, uvicorn and
Jinja2 are installed; otherwise nothing but ``REDIQ_UNAVAILABLE`` (``rediq plugins``).

Loading it imports none of them: the command's module imports uvicorn and Starlette
when the command runs."""

from __future__ import annotations

from rediq_core.hookspecs import RegisterCommand, RegisterSettings
from rediq_core.plugins import hookimpl
from rediq_core.plugins.extras import missing_extra

from . import EXTRA, settings

__all__ = ["REDIQ_UNAVAILABLE", "rediq_register_settings"]

REDIQ_UNAVAILABLE = missing_extra(EXTRA, "jinja2", "python_multipart", "starlette", "uvicorn")


@hookimpl
def rediq_register_settings(register: RegisterSettings) -> None:
    register(settings)


if REDIQ_UNAVAILABLE is None:

    @hookimpl
    def rediq_register_commands(register: RegisterCommand) -> None:
        from .command import dashboard

        register(dashboard)
