"""``rediq doctor``: check a deployment and explain what needs attention (exit 1 if any)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import rich_click as click
from rich.table import Table

from .. import roles
from ..control import Control
from ..diagnosis import Check, CheckStatus
from ..roles import Role, supports
from .render import console, echo_json
from .target import EXIT_NOTHING, NAMESPACES_NAMED, Target, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["doctor"]

_STYLE = {
    CheckStatus.OK: "green",
    CheckStatus.INFO: "cyan",
    CheckStatus.WARN: "yellow",
    CheckStatus.FAIL: "red",
}


def _live(count: int, namespace: str) -> str:
    if not count:
        return f"no live worker in namespace {namespace!r}"
    return f"{count} live worker{'s' if count > 1 else ''} in namespace {namespace!r}"


async def _live_elsewhere(app: Rediq) -> dict[str, int]:
    """Live workers per other namespace of the server (brokers with the diagnosis role)."""
    broker = app.get_broker()
    if not supports(broker, Role.DIAGNOSIS):
        return {}
    others = [ns for ns in await roles.diagnosis(broker).namespaces() if ns != app.namespace]
    found = {}
    for namespace in others[:NAMESPACES_NAMED]:
        other = app.plugins.broker(dataclasses.replace(app.broker_options, namespace=namespace))
        try:
            live = [w for w in await Control(other).workers() if not w.stale]
        finally:
            await other.close()
        if live:
            found[namespace] = len(live)
    return found


async def _workers(app: Rediq) -> Check:
    workers = await app.control.workers()
    stale = [w.name for w in workers if w.stale]
    detail = _live(len(workers) - len(stale), app.namespace) + (
        f", {len(stale)} stale: {', '.join(stale)}" if stale else ""
    )
    if stale:
        return Check(
            "workers",
            CheckStatus.WARN,
            detail,
            "a stale worker missed heartbeats:"
            " it is blocked or gone (its leases expire and its tasks run elsewhere)",
        )
    if workers:
        return Check("workers", CheckStatus.OK, detail)
    elsewhere = await _live_elsewhere(app)
    if elsewhere:
        first = next(iter(elsewhere))
        return Check(
            "workers",
            CheckStatus.INFO,
            "; ".join([detail, *(_live(n, ns) for ns, n in elsewhere.items())]),
            f"workers serve other namespaces: pass --namespace {first} (or --app) to"
            " check one of them",
        )
    return Check("workers", CheckStatus.INFO, detail, "no worker is running")


def _signing(app: Rediq) -> Check:
    unsafe = app.unsafe_serializers()
    if unsafe and not app.allow_unsigned:
        return Check(
            "signing",
            CheckStatus.FAIL,
            f"accepts {', '.join(unsafe)} unsigned",
            "workers refuse to start: set Rediq(signing_key=...)",
        )
    if unsafe:
        return Check(
            "signing",
            CheckStatus.WARN,
            f"accepts {', '.join(unsafe)} unsigned (allow_unsigned=True)",
            "anyone who can write to Redis can run code in workers: set Rediq(signing_key=...)",
        )
    signed = "signs and verifies messages" if app.signer.verifies else "unsigned json"
    return Check("signing", CheckStatus.OK, signed)


async def _diagnose(app: Rediq, with_app: bool) -> list[Check]:
    broker = app.get_broker()
    if supports(broker, Role.DIAGNOSIS):
        checks = await roles.diagnosis(broker).diagnose()
    else:
        checks = [
            Check("broker", CheckStatus.INFO, f"{type(broker).__name__} has no server checks")
        ]
    checks.append(await _workers(app))
    if with_app:
        checks.append(_signing(app))
    return checks


@click.command()
@control_command
def doctor(target: Target) -> None:
    """Check Redis and the workers: version, memory policy, persistence, clock skew,
    latency, permissions, topology, live and stale workers (and, with --app, signing).
    Exits 1 when something needs attention."""
    checks = run(
        target, lambda app: _diagnose(app, target.app_spec is not None), check_namespace=False
    )
    attention = any(c.status.attention for c in checks)
    if target.as_json:
        echo_json(
            {
                "ok": not attention,
                "checks": [
                    {
                        "name": c.name,
                        "status": c.status.value,
                        "detail": c.detail,
                        "advice": c.advice,
                    }
                    for c in checks
                ],
            }
        )
    else:
        table = Table("check", "status", "found", "what it means", show_lines=False)
        for c in checks:
            table.add_row(c.name, f"[{_STYLE[c.status]}]{c.status.value}[/]", c.detail, c.advice)
        console().print(table)
    if attention:
        raise SystemExit(EXIT_NOTHING)
