"""The worker's view of its broker connection: one line when an outage starts, one when
it ends ("reconnected"), whichever component (fetchers, settler, listeners, keeper thread)
notices. Components report :meth:`BrokerHealth.ok` only after a command succeeded against
the broker, so "reconnected" is never logged while the broker is still down; the failed
attempts in between are logged at debug level only."""

from __future__ import annotations

import logging
import threading
import time

from ..urls import redact_url

__all__ = ["BrokerHealth"]

log = logging.getLogger("rediq.worker")


class BrokerHealth:
    """Thread-safe outage tracker; components call :meth:`failed` and :meth:`ok`."""

    def __init__(self, url: str) -> None:
        self.url = redact_url(url)
        self._lock = threading.Lock()
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, what: str, exc: BaseException) -> None:
        """``what`` could not reach the broker: a warning for the first failure of an
        outage, a debug line for each later attempt."""
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        if not first:
            log.debug("still no connection to %s (%s: %s)", self.url, what, exc)
            return
        log.warning(
            "lost the connection to %s (%s: %s); retrying with backoff, nothing is dropped",
            self.url,
            what,
            exc,
        )

    def ok(self) -> None:
        """A command succeeded against the broker (never call it for a step that sent
        nothing): ends the outage, if there was one."""
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("reconnected to %s after %.1f s", self.url, time.monotonic() - since)
