"""The port of ``rediq worker --metrics-port``: a worker that cannot serve it does not
start, since an operator who asked for metrics believes the worker is monitored.

Standard library only: checked before the worker imports prometheus_client."""

from __future__ import annotations

import errno
import socket
import sys

__all__ = ["EXIT_UNSERVABLE", "exit_if_unservable", "unservable"]

#: Exit status of a worker refused at start because its metrics port cannot be served.
EXIT_UNSERVABLE = 1


def unservable(port: int, host: str, exc: OSError) -> str:
    """The one-line reason why ``host:port`` could not be bound."""
    why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be served on {host}"
    return f"--metrics-port {port} {why} ({exc.strerror or exc})"


def exit_if_unservable(port: int | None, host: str) -> None:
    """Exit with ``error: ...`` on stderr when ``host:port`` cannot be bound right now
    (before the worker connects, consumes or forks anything). Port 0 (any free port)
    and no port pass."""
    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            pass  # bound the way the metrics server binds (SO_REUSEADDR): servable
    except OSError as exc:
        print(f"error: {unservable(port, host, exc)}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_UNSERVABLE) from None
