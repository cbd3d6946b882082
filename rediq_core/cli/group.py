"""The top-level command group: built-in subcommands, plugin subcommands, ``rediq APP``.

Help and errors are drawn by rich-click. A worker run (``rediq worker APP ...`` or
``rediq APP ...`` without ``-h``/``--help``/``--version``) parses its command line with
plain click and imports rich-click only if it has an error to show: a worker process that
runs for days does not keep rich-click's modules in memory (~1.5 MiB of an idle worker).
Every other invocation goes to the same group built on rich-click (:func:`_rich_group`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from .. import __version__
from ..plugins import PluginHost, make_plugin_host

__all__ = ["RediqGroup", "main"]

#: Built-in subcommands: name -> "module:attribute", imported on use to keep start-up fast.
BUILTIN_COMMANDS = {
    "cancel": "rediq_core.cli.operate_cmds:cancel",
    "dead-letters": "rediq_core.cli.operate_cmds:dead_letters",
    "delete": "rediq_core.cli.operate_cmds:delete",
    "doctor": "rediq_core.cli.doctor_cmd:doctor",
    "events": "rediq_core.cli.events_cmd:events",
    "forget": "rediq_core.cli.operate_cmds:forget",
    "history": "rediq_core.cli.history_cmd:history",
    "limits": "rediq_core.cli.limits_cmd:limits",
    "pause": "rediq_core.cli.operate_cmds:pause",
    "cron": "rediq_core.cli.cron_cmd:cron",
    "plugins": "rediq_core.cli.plugins_cmd:plugins",
    "purge": "rediq_core.cli.operate_cmds:purge",
    "queues": "rediq_core.cli.inspect_cmds:queues",
    "resume": "rediq_core.cli.operate_cmds:resume",
    "scaling": "rediq_core.cli.history_cmd:scaling",
    "stop-worker": "rediq_core.cli.operate_cmds:stop_worker",
    "task": "rediq_core.cli.inspect_cmds:task",
    "tasks": "rediq_core.cli.inspect_cmds:tasks",
    "top": "rediq_core.cli.top_cmd:top",
    "worker": "rediq_core.cli.worker_cmd:worker",
    "workers": "rediq_core.cli.inspect_cmds:workers",
    "workflow": "rediq_core.cli.workflow_cmd:workflow",
}


def _load(spec: str) -> click.Command:
    module, _, attr = spec.partition(":")
    command: click.Command = getattr(importlib.import_module(module), attr)
    return command


class RediqCommands(click.Group):
    """Finds built-in and plugin subcommands; ``rediq module:app ...`` means ``rediq worker``."""

    _host: PluginHost | None = None
    #: The ``worker`` subcommand: on rich-click, or plain click for a worker run (which
    #: calls ``_started`` once its command line is parsed).
    _rich_worker = True
    _started: Callable[[], None] | None = None

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
                return worker_command(self.host(), rich=self._rich_worker, started=self._started)
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


class RediqGroup(RediqCommands):
    """The ``rediq`` group: a worker run is parsed by plain click, anything else by the
    same group on rich-click."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not self._is_worker_run(argv, complete_var, prog_name):
            rich = _rich_group(self)
            return rich.main(argv, prog_name, complete_var, standalone_mode, **extra)
        return self._run_worker(argv, prog_name, complete_var, standalone_mode, **extra)

    def _is_worker_run(
        self, argv: list[str], complete_var: str | None, prog_name: str | None
    ) -> bool:
        if not argv or any(arg in ("-h", "--help", "--version") for arg in argv):
            return False
        name = (prog_name or "rediq").replace("-", "_").replace(".", "_").upper()
        if os.environ.get(complete_var or f"_{name}_COMPLETE"):
            return False  # shell completion
        first = argv[0]
        return first == "worker" or (
            ":" in first and not first.startswith("-") and first not in self.host().commands()
        )

    def _run_worker(
        self,
        argv: list[str],
        prog_name: str | None,
        complete_var: str | None,
        standalone_mode: bool,
        **extra: Any,
    ) -> Any:
        self.host()  # one plugin host for the plain run and, on a parse error, the rich one
        started = False

        def start() -> None:
            nonlocal started
            started = True

        plain = _plain_group(self, start)
        try:
            code = click.Group.main(
                plain, argv, prog_name, complete_var, standalone_mode=False, **extra
            )
        except click.UsageError:
            if started:  # raised by the worker's start (the app, its options): draw it
                raise_drawn(sys.exc_info()[1])
            # a parse error: the same command line through rich-click draws it as always
            # (parsing has no side effect, so nothing happens twice)
            return _rich_group(self).main(argv, prog_name, complete_var, standalone_mode, **extra)
        except (click.ClickException, click.exceptions.Abort) as exc:
            if not standalone_mode:
                raise
            raise_drawn(exc)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


def _copy(group: RediqGroup, cls: type[RediqCommands]) -> RediqCommands:
    """``group`` (its name, options, callback and plugin host) on another class."""
    copy = cls(
        name=group.name,
        params=group.params,
        callback=group.callback,
        help=group.help,
        context_settings=group.context_settings,
    )
    copy._host = group._host
    return copy


def _plain_group(group: RediqGroup, started: Callable[[], None]) -> RediqCommands:
    """``group`` on plain click, its ``worker`` subcommand reporting through ``started``
    that its command line was parsed."""
    plain = _copy(group, RediqCommands)
    plain._rich_worker = False
    plain._started = started
    return plain


def _rich_group(group: RediqGroup) -> RediqCommands:
    """``group`` on rich-click: help and errors drawn as rich-click draws them."""
    import rich_click

    class RichRediqGroup(RediqCommands, rich_click.RichGroup):  # type: ignore[misc]
        pass

    return _copy(group, RichRediqGroup)


def raise_drawn(exc: BaseException | None) -> NoReturn:
    """Show a click error (or abort) as rich-click shows it, and exit with its status:
    a rich-click command whose only work is to raise it."""
    import rich_click

    def fail() -> None:
        raise exc  # type: ignore[misc]

    rich_click.RichCommand(name="rediq", callback=fail).main(args=[], prog_name="rediq")
    raise SystemExit(1)  # pragma: no cover - main() exits


@click.group(cls=RediqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rediq")
def main() -> None:
    """rediq: an asyncio-native, Redis-backed distributed task framework.

    Start a worker with `rediq worker module:app` (or the original `rediq module:app`).
    """
