"""``rediq worker APP`` (and the original ``rediq APP``): start a worker.

Imports stay light: the worker package is imported only when the command runs, and the
command is a plain click command, dressed by rich-click only where a person reads it (help,
errors: :mod:`rediq_core.cli.group`), so a running worker never loads rich-click.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .. import defaults
from ..errors import PluginNameClash
from ..urls import redact_url

if TYPE_CHECKING:
    from ..app import Rediq
    from ..plugins import PluginHost
    from ..worker import Worker

__all__ = ["load_app", "redact_url", "worker", "worker_command"]


def load_app(spec: str, *, full_traceback: bool = False) -> Rediq:
    """Import ``module:attribute`` (from the current directory); a one-line error if not.

    An exception raised by the module's own code is reported with the file, line and
    source of the frame that raised it (printed on stderr), and with the whole traceback
    when ``full_traceback`` (``--log-level debug``)."""
    from ..app import Rediq

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"{spec!r} is not of the form module:attribute (e.g. mytasks:app)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        where = _report_import_error(module_name, exc, full_traceback)
        raise click.BadParameter(
            f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}{where}"
        ) from None
    app = getattr(module, attr, None)
    if not isinstance(app, Rediq):
        found = "nothing" if app is None else type(app).__name__
        raise click.BadParameter(f"{spec!r} is {found}, not a rediq.Rediq app")
    return app


def _report_import_error(module_name: str, exc: Exception, full: bool) -> str:
    """Print where the module's code failed (its last frame; with ``full`` the whole
    traceback, importlib's frames left out) and return a short ``(file, line N)``."""
    if isinstance(exc, ModuleNotFoundError) and exc.name == module_name:
        return ""  # the module itself is missing: nothing of the user's code ran
    machinery = {__file__, importlib.__file__}
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename not in machinery and not frame.filename.startswith("<frozen ")
    ]
    if isinstance(exc, SyntaxError) and exc.filename:
        filename, lineno, source = exc.filename, exc.lineno, (exc.text or "").strip()
    elif frames:
        filename, lineno = frames[-1].filename, frames[-1].lineno
        source = frames[-1].line or ""
    else:
        return ""
    if full:
        click.echo(
            "Traceback (most recent call last):\n"
            + "".join(traceback.format_list(frames))
            + "".join(traceback.format_exception_only(exc)),
            err=True,
            nl=False,
        )
    else:
        click.echo(
            f'  File "{filename}", line {lineno}\n    {source}\n'
            f"  {type(exc).__name__}: {exc}  (--log-level debug for the traceback)",
            err=True,
        )
    return f" ({os.path.basename(filename)}, line {lineno})"


def _banner(app: Rediq, worker: Worker, *, markup: bool) -> str:
    """The start-up banner; with ``markup``, in rich markup (values escaped)."""
    from .. import __version__

    def shown(text: str, style: str = "") -> str:
        if not markup:
            return text
        from rich.markup import escape

        return f"[{style}]{escape(text)}[/]" if style else escape(text)

    c = worker.config
    pool = f"{c.executor_pool_name}({c.executor_pool_size or 'auto'})"
    return "\n".join(
        [
            f"{shown(f'rediq {__version__}', 'bold')} worker {shown(worker.id, 'cyan')}",
            shown(f"  broker      {redact_url(app.redis_url)} (namespace {app.namespace})"),
            shown(f"  queues      {c.describe_queues(worker.queues)}"),
            shown(
                f"  concurrency {c.task_concurrency} tasks, {c.queue_size} prefetched,"
                f" executor {pool}"
            ),
            shown(
                f"  serializer  {app.serializer_name}"
                f" (accepts {', '.join(sorted(app.accept_serializers))})"
            ),
            shown(f"  plugins     {', '.join(app.plugins.plugin_names())}"),
            shown(f"  mode        {'burst' if c.burst else 'continuous'}"),
        ]
    )


def _print_banner(app: Rediq, worker: Worker) -> None:
    """Print the banner on stderr: styled by rich on a terminal, else the same text
    plain, without importing rich (an idle worker under a supervisor, a container or
    systemd never needs it)."""
    if sys.stderr.isatty():
        from rich.console import Console

        Console(stderr=True, highlight=False).print(_banner(app, worker, markup=True))
    else:
        print(_banner(app, worker, markup=False), file=sys.stderr, flush=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("app_spec", metavar="APP")
@click.option(
    "--queue-name",
    "queue_names",
    multiple=True,
    help="Queue to consume (repeatable); NAME:WEIGHT gives it a weight (implies"
    " --queue-order weighted). All queues share --worker-task-concurrency.",
)
@click.option("--skip-default-queue", is_flag=True, help="Do not consume the default queue.")
@click.option(
    "--queue-order",
    type=click.Choice(["fair", "strict", "weighted"]),
    default=None,
    help="Which queue gets a free runner when several have due tasks: fair"
    " (round-robin), strict (the first as listed), weighted (by NAME:WEIGHT)."
    " [default: fair, or weighted when weights are given]",
)
@click.option(
    "--worker-name",
    default=None,
    help="This worker's name. [default: worker@HOST:PID]",
)
@click.option(
    "--worker-queue-size",
    type=click.IntRange(min=0),
    default=defaults.WORKER_QUEUE_SIZE,
    show_default=True,
    help="Tasks leased beyond those that can start now (prefetch; 0: none).",
)
@click.option(
    "--worker-task-concurrency",
    type=click.IntRange(min=1),
    default=defaults.WORKER_TASK_CONCURRENCY,
    show_default=True,
    help="Task coroutines running at once, across all consumed queues.",
)
@click.option(
    "--executor-pool-name",
    default=defaults.EXECUTOR_POOL_NAME,
    show_default=True,
    help="Pool of run_in_current_executor: thread or process (or a plugin's).",
)
@click.option(
    "--executor-pool-size",
    type=click.IntRange(min=1),
    default=None,
    help="Size of that pool (default: CPU based).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error", "critical"], case_sensitive=False),
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write logs to this file (plain text) instead of the console.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "rich", "plain", "json"]),
    default=defaults.WORKER_LOG_FORMAT,
    envvar=defaults.ENV_LOG_FORMAT,
    show_default=True,
    help="auto: rich on a terminal, plain otherwise.",
)
@click.option(
    "--redis-url",
    envvar=defaults.ENV_REDIS_URL,
    default=None,
    help="Broker URL, overriding the app's (env REDIQ_REDIS_URL).",
)
@click.option("--burst", is_flag=True, help="Exit once the queues hold nothing to run.")
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    default=defaults.WORKER_SHUTDOWN_TIMEOUT_S,
    show_default=True,
    help="Seconds a graceful shutdown waits for running and prefetched tasks"
    " before handing the rest back (0: no limit).",
)
@click.option(
    "--fail-fast",
    is_flag=True,
    help="Exit at once if Redis is unreachable at start (default: wait for it).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to run under a supervisor that restarts one that dies"
    " and forwards signals (each registers as a worker).",
)
@click.option("--reload", is_flag=True, help="Restart when a .py file changes (development).")
def worker(app_spec: str, **options: Any) -> None:
    """Start a worker for APP (module:attribute, importable from the current directory).

    The first SIGINT/SIGTERM stops fetching and finishes running and prefetched tasks;
    a second one cancels running tasks and hands them back to their queues at once.
    """
    _start(app_spec, None, options)


def worker_command(
    host: PluginHost,
    *,
    rich: bool = True,
    started: Callable[[], None] | None = None,
) -> click.Command:
    """``rediq worker`` with the options the plugins of ``host`` register (placed before
    ``--reload``); their values go to the plugins' ``rediq_configure_worker``.

    ``rich``: a rich-click command (help and errors drawn by rich-click), else the plain
    click command a worker run parses its command line with. ``started`` is called when
    the command line is parsed and the worker starts (errors after it are not parse errors).
    """
    added = [registration.value for registration in host.worker_options().values()]
    taken = {name: param.name for param in worker.params for name in (param.name, *param.opts)}
    for option in added:
        for name in (*option.opts, option.name):
            if name in taken:
                plugin = host.worker_options()[option.name or "?"].plugin
                raise PluginNameClash(
                    f"worker option {name!r} of plugin {plugin!r} is a built-in option of"
                    " `rediq worker`; block the plugin with REDIQ_DISABLE_PLUGINS"
                )
    at = next(i for i, param in enumerate(worker.params) if param.name == "reload")
    params = [*worker.params[:at], *added, *worker.params[at:]]

    def callback(app_spec: str, **options: Any) -> None:
        if started is not None:
            started()
        _start(app_spec, host, options)

    if rich:
        import rich_click

        return rich_click.RichCommand(
            name=worker.name,
            context_settings=worker.context_settings,
            callback=callback,
            params=params,
            help=worker.help,
        )
    command = copy.copy(worker)
    command.params = params
    command.callback = callback
    return command


def _start(app_spec: str, host: PluginHost | None, options: dict[str, Any]) -> None:
    if options.pop("reload"):
        from ..worker.reload import run_with_reload

        raise SystemExit(run_with_reload(sys.argv))
    processes = options.pop("processes")
    core = {param.name for param in worker.params}
    plugin_options = {name: options.pop(name) for name in list(options) if name not in core}
    if host is not None:
        host.configure_worker(plugin_options, processes)
    if processes > 1:
        from ..logs import setup_logging
        from ..worker.supervisor import run_processes

        setup_logging(
            level=options["log_level"], file=options["log_file"], fmt=options["log_format"]
        )
        prepare = host.prepare_worker_process if host is not None else None
        raise SystemExit(run_processes(sys.argv[1:], processes, prepare))
    status = _run(app_spec, **options)
    if status != 0:
        # A forced stop: whatever could be handed back was; code that ignored cancellation
        # has ended by now (the run waited for it). Leave without joining idle threads.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise SystemExit(status)


def _run(
    app_spec: str,
    *,
    queue_names: tuple[str, ...],
    redis_url: str | None,
    log_level: str,
    log_file: str | None,
    log_format: str,
    **options: Any,
) -> int:
    from ..errors import RediqError
    from ..logs import setup_logging
    from ..worker import Worker, WorkerConfig
    from ..worker.config import parse_queue_names

    app = load_app(app_spec, full_traceback=log_level.lower() == "debug")
    if redis_url:
        app.redis_url = redis_url
    try:
        queues, weights = parse_queue_names(queue_names)
        config = WorkerConfig(
            queues=queues,
            queue_weights=weights,
            queue_order=options["queue_order"],
            skip_default_queue=options["skip_default_queue"],
            worker_name=options["worker_name"],
            queue_size=options["worker_queue_size"],
            task_concurrency=options["worker_task_concurrency"],
            executor_pool_name=options["executor_pool_name"],
            executor_pool_size=options["executor_pool_size"],
            burst=options["burst"],
            shutdown_timeout_s=options["shutdown_timeout"],
            fail_fast=options["fail_fast"],
            **WorkerConfig.env_overrides(os.environ),  # type: ignore[arg-type]
        )
        app.plugins.executor_pools()[config.executor_pool_name]
    except KeyError:
        known = ", ".join(sorted(app.plugins.executor_pools()))
        raise click.BadParameter(
            f"unknown executor pool {options['executor_pool_name']!r}; installed: {known}"
        ) from None
    except RediqError as exc:
        raise click.UsageError(str(exc)) from None
    setup_logging(level=log_level, file=log_file, fmt=log_format)
    instance = Worker(app, config)
    _print_banner(app, instance)
    try:
        return asyncio.run(instance.run())
    except Exception as exc:
        if log_level.lower() == "debug":
            raise
        raise click.ClickException(
            f"worker stopped: {type(exc).__name__}: {exc} (--log-level debug for a traceback)"
        ) from None
