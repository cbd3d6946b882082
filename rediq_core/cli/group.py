"""The top-level command group: built-in subcommands, plugin subcommands, ``rediq APP``."""

from __future__ import annotations

import importlib
import importlib.util

import rich_click as click

from .. import __version__
from ..plugins import PluginHost, make_plugin_host

__all__ = ["RediqGroup", "main"]

#: Built-in subcommands: name -> "module:attribute", imported on use to keep start-up fast.
BUILTIN_COMMANDS = {
    "cancel": "rediq_core.cli.operate_cmds:cancel",
    "dead-letters": "rediq_core.cli.operate_cmds:dead_letters",
    "delete": "rediq_core.cli.operate_cmds:delete",
    "doctor": "rediq_core.cli.doctor_cmd:doctor",
    "forget": "rediq_core.cli.operate_cmds:forget",
    "pause": "rediq_core.cli.operate_cmds:pause",
    "cron": "rediq_core.cli.cron_cmd:cron",
    "plugins": "rediq_core.cli.plugins_cmd:plugins",
    "purge": "rediq_core.cli.operate_cmds:purge",
    "queues": "rediq_core.cli.inspect_cmds:queues",
    "resume": "rediq_core.cli.operate_cmds:resume",
    "stop-worker": "rediq_core.cli.operate_cmds:stop_worker",
    "task": "rediq_core.cli.inspect_cmds:task",
    "tasks": "rediq_core.cli.inspect_cmds:tasks",
    "top": "rediq_core.cli.top_cmd:top",
    "worker": "rediq_core.cli.worker_cmd:worker",
    "workers": "rediq_core.cli.inspect_cmds:workers",
}


def _load(spec: str) -> click.Command:
    module, _, attr = spec.partition(":")
    command: click.Command = getattr(importlib.import_module(module), attr)
    return command


class RediqGroup(click.RichGroup):
    """Finds built-in and plugin subcommands; ``rediq module:app ...`` means ``rediq worker``."""

    _host: PluginHost | None = None

    def host(self) -> PluginHost:
        if self._host is None:
            self._host = make_plugin_host()
        return self._host

    def _available(self) -> dict[str, str]:
        return {
            name: spec
            for name, spec in BUILTIN_COMMANDS.items()
            if importlib.util.find_spec(spec.partition(":")[0]) is not None
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._available(), *self.host().commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "worker":  # with the options plugins add to it
            from ..errors import PluginError
            from .worker_cmd import worker_command

            try:
                return worker_command(self.host())
            except PluginError as exc:  # a plugin that fails to load, or a clash
                raise click.UsageError(str(exc)) from None
        if cmd_name in self._available():
            return _load(self._available()[cmd_name])
        registration = self.host().commands().get(cmd_name)
        return registration.value if registration else None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and ":" in args[0] and self.get_command(ctx, args[0]) is None:
            args = ["worker", *args]  # the original `rediq APP [options]` form
        return super().resolve_command(ctx, args)


@click.group(cls=RediqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rediq")
def main() -> None:
    """rediq: an asyncio-native, Redis-backed distributed task framework.

    Start a worker with `rediq worker module:app` (or the original `rediq module:app`).
    """
