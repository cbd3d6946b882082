"""What every control command shares: which broker to talk to (``--app`` or
``--redis-url``/``--namespace``), ``--json``, one-line errors and exit codes.

Exit codes: 0 done, 1 not found or nothing done (a namespace that holds nothing
included), 2 usage error.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import rich_click as click
from click import get_current_context
from click.core import ParameterSource
from click.exceptions import Exit

from .. import defaults, roles
from ..roles import Role, supports
from .render import echo_json

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = [
    "EXIT_NOTHING",
    "EXIT_USAGE",
    "CommandError",
    "Target",
    "UsageFailure",
    "confirm",
    "control_command",
    "empty_namespace_hint",
    "report_paused",
    "run",
]

EXIT_NOTHING, EXIT_USAGE = 1, 2
#: The namespace hint names at most this many of the namespaces found.
NAMESPACES_NAMED = 10
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class CommandError(Exception):
    """Printed as one line on stderr (``error: ...``); exit code 1 (not found, nothing
    done). Raised instead of click's exceptions, which rich-click prints as a panel."""

    exit_code = EXIT_NOTHING


class UsageFailure(CommandError):
    """A one-line usage error; exit code 2."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True)
class Target:
    """The broker a control command talks to, and how it prints."""

    app_spec: str | None
    redis_url: str | None
    namespace: str | None
    as_json: bool

    def app(self) -> Rediq:
        from ..app import Rediq
        from .worker_cmd import load_app

        if self.app_spec:
            try:
                app = load_app(self.app_spec)
            except click.BadParameter as exc:
                raise UsageFailure(exc.message) from None
            if self.redis_url:
                app.redis_url = self.redis_url
            if self.namespace:
                app.namespace = self.namespace
            return app
        if not self.redis_url:
            raise UsageFailure(
                "name the app (--app module:app) or the broker (--redis-url URL"
                f" [--namespace NS], or env {defaults.ENV_REDIS_URL})"
            )
        return Rediq(
            redis_url=self.redis_url, namespace=self.namespace or defaults.DEFAULT_NAMESPACE
        )


def _within(own: Target) -> Target:
    """A subcommand's target completed by its group's (``rediq cron --app A pause X``):
    an option given on the subcommand's command line wins, then the group's value."""
    ctx = get_current_context()
    outer = ctx.parent.find_object(Target) if ctx.parent else None
    if outer is None:
        return own

    def pick(name: str, mine: str | None, theirs: str | None) -> str | None:
        given = ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        return mine if given or theirs is None else theirs

    return Target(
        pick("app_spec", own.app_spec, outer.app_spec),
        pick("redis_url", own.redis_url, outer.redis_url),
        pick("namespace", own.namespace, outer.namespace),
        own.as_json or outer.as_json,
    )


def control_command(fn: F) -> F:
    """Add ``--app``, ``--redis-url``, ``--namespace`` and ``--json``; pass ``target``.

    On a group's subcommand the group's target fills in what the subcommand's own options
    leave out (a group stores its target as ``ctx.obj``)."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
    @click.option(
        "--namespace",
        envvar=defaults.ENV_NAMESPACE,
        default=None,
        help=f"Key namespace (default: the app's, or {defaults.DEFAULT_NAMESPACE!r}).",
    )
    @click.option(
        "--redis-url",
        envvar=defaults.ENV_REDIS_URL,
        default=None,
        help="Broker URL (env REDIQ_REDIS_URL); overrides the app's.",
    )
    @click.option(
        "-a",
        "--app",
        "app_spec",
        envvar=defaults.ENV_APP,
        default=None,
        metavar="MODULE:APP",
        help="The application (env REDIQ_APP).",
    )
    @functools.wraps(fn)
    def wrapper(
        app_spec: str | None,
        redis_url: str | None,
        namespace: str | None,
        as_json: bool,
        **kwargs: Any,
    ) -> Any:
        target = _within(Target(app_spec, redis_url, namespace, as_json))
        try:
            return fn(target=target, **kwargs)
        except CommandError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


async def empty_namespace_hint(app: Rediq) -> str | None:
    """What to say when the app's namespace holds nothing (no queue, no worker, no key
    with its prefix: a typo, usually), naming the namespaces found on the server; None
    when it holds something or the broker cannot tell (no diagnosis role)."""
    broker = app.get_broker()
    if not supports(broker, Role.DIAGNOSIS):
        return None
    if await app.control.queues() or await roles.registry(broker).workers():
        return None
    found = await roles.diagnosis(broker).namespaces()
    if app.namespace in found:
        return None
    named = ", ".join(found[:NAMESPACES_NAMED]) or "none"
    if len(found) > NAMESPACES_NAMED:
        named += f" and {len(found) - NAMESPACES_NAMED} more"
    return f"namespace {app.namespace!r} holds nothing; namespaces found: {named}"


def run(
    target: Target, action: Callable[[Rediq], Awaitable[T]], *, check_namespace: bool = True
) -> T:
    """Build the app, run ``action`` in an event loop, close the broker; broker errors
    become one-line errors. First, with ``check_namespace``, a namespace that holds
    nothing is an error (exit 1) naming the namespaces found."""
    app = target.app()

    async def main() -> T:
        try:
            if check_namespace and (hint := await empty_namespace_hint(app)):
                raise CommandError(hint)
            return await action(app)
        finally:
            await app.close()

    try:
        return asyncio.run(main())
    except (CommandError, click.ClickException, Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # the broker's own errors (connection refused, ...)
        from .worker_cmd import redact_url

        raise CommandError(
            f"broker {redact_url(app.redis_url)}: {type(exc).__name__}: {exc}"
        ) from None


def confirm(question: str, yes: bool) -> None:
    """Destructive commands: ask on a terminal; elsewhere require ``--yes``."""
    if yes:
        return
    if not (sys.stdin.isatty() and os.isatty(sys.stdin.fileno())):
        raise UsageFailure(f"{question} -- not a terminal: pass --yes to confirm")
    if not click.confirm(question, default=False):
        raise CommandError("aborted, nothing changed")


def report_paused(target: Target, kind: str, name: str, paused: bool, changed: bool) -> None:
    """The outcome of pausing or resuming a queue or a schedule, alike for both: a line
    (or ``--json``), and exit 1 when nothing changed (already paused, or not paused)."""
    if target.as_json:
        echo_json({kind: name, "paused": paused, "changed": changed})
    elif changed:
        click.echo(f"{kind} {name!r} {'paused' if paused else 'resumed'}")
    if not changed:
        raise CommandError(f"{kind} {name!r} was {'already' if paused else 'not'} paused")
