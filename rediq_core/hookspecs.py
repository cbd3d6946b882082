"""The whole rediq plugin contract.

Every hook is named ``rediq_*``. Registration hooks are synchronous and receive a
``register`` callback owned by rediq, so a name registered by two plugins is reported with
both plugin names. Event hooks may be ``async def``: rediq awaits each result in turn,
and a listener that raises is logged and skipped, never breaking the task or the worker.

How event hooks are called. pluggy itself is synchronous: it would hand back the
coroutine of an ``async def`` listener unawaited, and its wrappers would see coroutines
instead of results. So rediq calls event hooks itself (``rediq_core/plugins/calling.py``),
in pluggy's order (``tryfirst`` first, ``trylast`` last, later registrations first):

- each wrapper (``wrapper=True``, or old-style ``hookwrapper=True``; a *synchronous*
  generator, as pluggy requires) runs up to its ``yield``; then every plain listener
  runs, each awaited before the next starts; then the wrappers resume, innermost first.
  A wrapper suits work around the listeners (a span, a timer).
- at its ``yield`` a ``wrapper=True`` receives the list of the listeners' non-``None``
  results, a ``hookwrapper=True`` a ``pluggy.Result`` holding that list (event hooks
  return nothing, so it is normally empty); neither can change the outcome.
- a listener, or a wrapper before or after its ``yield``, that raises is logged with its
  traceback and skipped; a wrapper that yields twice is closed and logged.

Inside rediq every event is fired through one typed method per hook
(``app.plugins.events.before_task_start(task)``, ``rediq_core/plugins/events.py``), so a
misspelt event is a type error; a test keeps those methods and the hooks below in step.

The docstrings below *are* the reference documentation (``docs/hooks.md`` is generated
from them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .broker import Broker, BrokerOptions, EnqueueOutcome
    from .info import TaskInfo, WorkerInfo
    from .message import TaskMessage
    from .serializer import Serializer
    from .workflow_records import WorkflowRecord

__all__ = [
    "RegisterBroker",
    "RegisterCommand",
    "RegisterExecutorPool",
    "RegisterPytestPlugin",
    "RegisterSerializer",
    "RegisterSettings",
    "RegisterWorkerOption",
    "hookspec",
]

hookspec = pluggy.HookspecMarker("rediq")

RegisterBroker = Callable[[str, "Callable[[BrokerOptions], Broker]"], None]
RegisterSerializer = Callable[[str, "Callable[[], Serializer]"], None]
RegisterExecutorPool = Callable[[str, Callable[[int | None], Executor]], None]
RegisterCommand = Callable[["click.Command"], None]
RegisterPytestPlugin = Callable[[str], None]
RegisterWorkerOption = Callable[["click.Option"], None]
RegisterSettings = Callable[[ModuleType], None]
MaybeAwaitable = Awaitable[None] | None

# -------------------------------------------------------------------------------------
# Registration hooks (synchronous, called once per plugin manager)
# -------------------------------------------------------------------------------------


@hookspec
def rediq_register_brokers(register: RegisterBroker) -> None:
    """Register broker factories by URL scheme.

    :param register: call ``register(scheme, factory)`` once per URL scheme, e.g.
        ``register("redis", make_broker)``. ``factory`` receives a
        :class:`~rediq_core.broker.BrokerOptions` and returns a
        :class:`~rediq_core.broker.Broker`. A scheme registered by two plugins raises
        :class:`~rediq_core.errors.PluginNameClash` naming both.
    """


@hookspec
def rediq_register_serializers(register: RegisterSerializer) -> None:
    """Register serializers by name.

    :param register: call ``register(name, factory)``; ``factory()`` returns a
        :class:`~rediq_core.serializer.Serializer`. If the serializer needs a package that
        is missing, register it anyway and let ``factory()`` raise
        :class:`~rediq_core.errors.PluginUnavailableError` saying which extra to install.
    """


@hookspec
def rediq_register_executor_pools(register: RegisterExecutorPool) -> None:
    """Register executor pools for ``run_in_current_executor`` by name.

    :param register: call ``register(name, factory)``; ``factory(size)`` returns a
        :class:`concurrent.futures.Executor` (``size`` is ``None`` for the pool's default).
        The worker option ``--executor-pool-name`` picks one by name.
    """


@hookspec
def rediq_register_commands(register: RegisterCommand) -> None:
    """Add subcommands to the ``rediq`` command line.

    :param register: call ``register(command)`` with a :class:`click.Command`; its
        ``name`` is the subcommand name.
    """


@hookspec
def rediq_register_pytest_plugins(register: RegisterPytestPlugin) -> None:
    """Give ``pytest -p rediq.testing`` the fixtures a plugin owns (the Redis plugin's
    ``rediq_redis_server``, ``rediq_redis_url``, topologies, ...), so the core's pytest
    plugin needs to know no broker.

    :param register: call ``register(module_name)`` with the dotted name of a module of
        pytest fixtures and hooks, e.g. ``register("rediq_redis.testing.fixtures")``; when
        pytest is configured with ``-p rediq.testing`` it is imported and registered with
        pytest as ``-p module_name`` would. A name, not the module: the plugin's production
        code never imports its testing code, and a worker never imports pytest. A module
        registered by two plugins raises :class:`~rediq_core.errors.PluginNameClash`
        naming both.
    """


@hookspec
def rediq_register_worker_options(register: RegisterWorkerOption) -> None:
    """Add options to ``rediq worker`` (e.g. ``--metrics-port`` of the Prometheus plugin).

    Declare them even when the plugin's optional dependencies are missing, and refuse a
    given value in :func:`rediq_configure_worker`, so the user learns which extra to
    install instead of reading "no such option".

    :param register: call ``register(option)`` with a :class:`click.Option`; its parsed
        value reaches :func:`rediq_configure_worker` under the option's ``name`` (e.g.
        ``metrics_port``). An option whose name is also a built-in option's or another
        plugin's raises :class:`~rediq_core.errors.PluginNameClash` naming both.
    """


@hookspec
def rediq_register_settings(register: RegisterSettings) -> None:
    """Publish the plugin's settings: its defaults and environment variable names.

    :param register: call ``register(module)`` with a module of ``Final`` constants,
        each documented by a ``#:`` comment above it (as in
        :mod:`rediq_core.defaults`); ``docs/configuration.md`` renders it in a section
        named after the plugin. Keep the module free of heavy imports: it is imported
        when the plugin loads, whether or not its extra is installed.
    """


# -------------------------------------------------------------------------------------
# Worker command (synchronous; in the process that parsed ``rediq worker``)
# -------------------------------------------------------------------------------------


@hookspec
def rediq_configure_worker(options: Mapping[str, Any], processes: int) -> None:
    """Called when ``rediq worker`` starts, after its command line is parsed and before it
    imports the app, connects to the broker or starts worker processes. With
    ``--processes N`` it is called in the supervisor (``processes`` is N) and again in
    each worker process it starts (``processes`` is 1 there). Not called by
    ``rediq.testing`` workers, nor by a worker started in code.

    Refuse an option here: raise :class:`click.UsageError` (exit status 2), or print
    ``error: ...`` on stderr and raise ``SystemExit(1)`` for a resource that cannot be
    had (a busy port), so nothing is consumed by a worker that cannot do what it was
    asked to.

    :param options: the parsed value of every option registered with
        :func:`rediq_register_worker_options`, by option ``name`` (``None`` when not
        given and without a default).
    :param processes: the value of ``--processes``.
    """


@hookspec
def rediq_prepare_worker_process(
    slot: int, processes: int, argv: list[str], env: dict[str, str]
) -> None:
    """Called by the ``rediq worker --processes N`` supervisor before it starts (or
    restarts) worker process ``slot``, so that a plugin can give each process its own
    arguments or environment (e.g. only the first process serves an HTTP port, all share
    one directory). The supervisor knows nothing else of plugins.

    :param slot: which process, ``0`` to ``processes - 1`` (a restarted process keeps its
        slot).
    :param processes: how many worker processes the supervisor runs.
    :param argv: the process's ``rediq`` arguments (``worker APP ...`` without
        ``--processes``), a fresh copy per start; edit it in place.
    :param env: the process's environment, a fresh copy of the supervisor's; edit it in
        place.
    """


# -------------------------------------------------------------------------------------
# Producer events (may be async)
# -------------------------------------------------------------------------------------


@hookspec
def rediq_before_task_enqueue(message: TaskMessage) -> MaybeAwaitable:
    """Called for every message a producer sends, before it is signed and handed to the
    broker: ``enqueue``, ``enqueue_many``, each cron tick a worker fires and each
    ``rediq cron trigger`` (one producer pipeline: hooks, signing, size check, send).
    Every worker racing for a cron tick calls it; only the one that stores the run calls
    :func:`rediq_after_task_enqueue`.

    :param message: the message about to be stored; add entries to ``message.headers``
        (strings) to carry data such as trace ids to the worker (they are signed).
    """


@hookspec
def rediq_after_task_enqueue(message: TaskMessage, outcome: EnqueueOutcome) -> MaybeAwaitable:
    """Called after the broker answered, once for every message that went through
    :func:`rediq_before_task_enqueue` and reached the broker (so a plugin can pair the
    two): ``enqueue``, ``enqueue_many``, cron ticks and ``rediq cron trigger``.

    :param message: the message, as sent (signed).
    :param outcome: ``outcome.accepted`` is False when the broker stored nothing: an
        unfinished task with the same id already existed (deduplication; ``state`` is that
        task's), another worker fired the same cron tick first (its run has the same id;
        ``state`` is ``pending``), or the tick belongs to a paused schedule (no run;
        ``state`` is ``cancelled``).
    """


@hookspec
def rediq_after_task_expired(
    task_id: str, task_name: str, queue: str, reason: str
) -> MaybeAwaitable:
    """Called once by the worker whose claim ended a task ``expired``: its ``expires``
    time passed before it started, or its ``deadline`` passed before its next attempt
    could start (docs/flow-control.md). The task never reaches a task context.

    :param task_id: the task's id.
    :param task_name: its task's name.
    :param queue: its queue.
    :param reason: which time passed, in words.
    """


@hookspec
def rediq_before_workflow_enqueue(workflow: WorkflowRecord) -> MaybeAwaitable:
    """Called once per workflow (``chain``, ``group``, ``chord``) before its steps are
    stored; each step then goes through :func:`rediq_before_task_enqueue` and
    :func:`rediq_after_task_enqueue` like any task, in the same context (a trace span made
    current here is the parent of the steps' producer spans: one trace per workflow).

    :param workflow: its id, its steps (queue and task of each) and what its result is
        made of.
    """


@hookspec
def rediq_after_workflow_enqueue(
    workflow: WorkflowRecord, error: BaseException | None
) -> MaybeAwaitable:
    """Called once per workflow after :func:`rediq_before_workflow_enqueue`, whether its
    steps were all stored (``error`` None) or storing them raised ``error``.

    :param workflow: as given to :func:`rediq_before_workflow_enqueue`.
    :param error: what the enqueue raised, or None.
    """


# -------------------------------------------------------------------------------------
# Task events, in a worker (may be async); the context accessors work as in @app.event
# -------------------------------------------------------------------------------------


@hookspec
def rediq_before_task_start(task: TaskInfo) -> MaybeAwaitable:
    """Called before the first attempt of a task.

    :param task: the task, as ``current_task_info()`` returns it.
    """


@hookspec
def rediq_before_task_retry(task: TaskInfo) -> MaybeAwaitable:
    """Called before every retry of a task (``task.retried`` is 1 before the first retry).

    :param task: the task, as ``current_task_info()`` returns it.
    """


@hookspec
def rediq_after_task_attempt(
    task: TaskInfo, duration_s: float, exception: BaseException | None
) -> MaybeAwaitable:
    """Called after every attempt of a task has run, before it is settled: after the first
    attempt and after each retry, whatever its outcome (for metrics and tracing; there is
    no ``@app.event`` handler of this name).

    :param task: the task, as ``current_task_info()`` returns it (``task.retried`` says
        which attempt this was).
    :param duration_s: how long the task function ran, in seconds.
    :param exception: the exception the attempt ended with (a retry follows when retries
        remain and the error is not a cancellation), or None when it returned a value.
    """


@hookspec
def rediq_after_task_success(task: TaskInfo, result: Any) -> MaybeAwaitable:
    """Called once, when the task has succeeded.

    :param task: the task, as ``current_task_info()`` returns it.
    :param result: the task function's return value.
    """


@hookspec
def rediq_after_task_failure(task: TaskInfo, exception: BaseException) -> MaybeAwaitable:
    """Called once, when the task has finally failed (retries exhausted or not retryable).

    :param task: the task, as ``current_task_info()`` returns it.
    :param exception: the exception of the last attempt.
    """


# -------------------------------------------------------------------------------------
# Worker events (may be async)
# -------------------------------------------------------------------------------------


@hookspec
def rediq_before_worker_startup(worker: WorkerInfo) -> MaybeAwaitable:
    """Called once when a worker starts, before it fetches any task.

    :param worker: the worker's name, queues and pool settings.
    """


@hookspec
def rediq_after_worker_shutdown(worker: WorkerInfo) -> MaybeAwaitable:
    """Called once when a worker has stopped, after its last task ended.

    :param worker: the worker's name, queues and pool settings.
    """
