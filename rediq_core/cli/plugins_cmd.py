"""``rediq plugins``: every loaded plugin and what it registers."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import cast

import rich_click as click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..plugins import PluginHost, make_plugin_host

__all__ = ["UNAVAILABLE_ATTRIBUTE", "plugin_rows", "plugin_status", "plugins"]

EVENT_PREFIX = ("rediq_before_", "rediq_after_")
LISTED = ("brokers", "serializers", "executor_pools", "events", "commands")
#: A plugin module whose optional dependencies are missing registers nothing and sets this
#: attribute to the command that enables it, e.g. ``pip install 'rediq[prometheus]'``.
UNAVAILABLE_ATTRIBUTE = "REDIQ_UNAVAILABLE"


def plugin_rows(host: PluginHost) -> list[dict[str, object]]:
    """One row per plugin: its name, distribution and everything it registers."""
    provides: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for kind, registry in (
        ("brokers", host.brokers()),
        ("serializers", host.serializers()),
        ("executor_pools", host.executor_pools()),
        ("commands", host.commands()),
    ):
        for name, registration in registry.items():
            provides[registration.plugin][kind].append(name)
    for hook_name in dir(host.pm.hook):
        if hook_name.startswith(EVENT_PREFIX):
            for impl in getattr(host.pm.hook, hook_name).get_hookimpls():
                provides[impl.plugin_name]["events"].append(hook_name.removeprefix("rediq_"))
    return [
        {
            "plugin": name,
            "distribution": host.distributions.get(name, "registered in code"),
            "status": plugin_status(host.pm.get_plugin(name)),
            **{
                kind: sorted(provides[name].get(kind, []))
                for kind in ("brokers", "serializers", "executor_pools", "events", "commands")
            },
        }
        for name in host.plugin_names()
    ]


def plugin_status(plugin: object) -> str:
    """``available``, or ``unavailable: <how to enable it>`` for a plugin whose optional
    dependencies are missing (it sets ``REDIQ_UNAVAILABLE`` to the pip command)."""
    missing = getattr(plugin, UNAVAILABLE_ATTRIBUTE, None)
    return f"unavailable: {missing}" if missing else "available"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List loaded plugins and what each registers."""
    rows = plugin_rows(make_plugin_host())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="rediq plugins")
    for column in (
        "plugin",
        "distribution",
        "status",
        "brokers",
        "serializers",
        "executor pools",
        "events",
        "commands",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(  # escaped: "rediq[prometheus]" is not rich markup
            escape(str(row["plugin"])),
            escape(str(row["distribution"])),
            escape(str(row["status"])),
            *(escape(", ".join(cast(list[str], row[key]))) for key in LISTED),
        )
    Console().print(table)
