"""Write a rediq plugin.

A plugin is a module (or object) with functions named after the hooks in
:mod:`rediq_core.hookspecs`, each marked with :data:`hookimpl`. Declare it under the
``rediq`` entry-point group of your distribution::

    # pyproject.toml
    [project.entry-points.rediq]
    audit = "rediq_audit"

    # rediq_audit.py
    from rediq import hookimpl

    @hookimpl
    def rediq_register_serializers(register):
        register("yaml", YamlSerializer)

    @hookimpl
    async def rediq_after_task_failure(task, exception):
        await send_alert(task.task_name, exception)

Installed plugins load automatically. ``REDIQ_DISABLE_PLUGINS=audit,other`` blocks named
plugins (built-ins too: ``redis``, ``serializers``), and ``REDIQ_DISABLE_PLUGIN_AUTOLOAD=1``
loads only rediq's own plugins.
"""

from __future__ import annotations

from ..markers import hookimpl
from .events import Event, Events
from .host import PluginHost, Registration
from .manager import make_plugin_host

__all__ = ["Event", "Events", "PluginHost", "Registration", "hookimpl", "make_plugin_host"]
