"""Cron expressions evaluated in an IANA time zone (croniter parses, zoneinfo localises).

An expression has five fields (``minute hour day month weekday``), or six with a leading
*seconds* field (``second minute hour day month weekday``), or is an alias such as
``@hourly``. Ticks are instants (epoch milliseconds). Daylight-saving changes
(docs/cron.md, "Time zones and DST"):

- **Gap** (spring forward): a wall time that does not exist that day is shifted forward by
  the length of the gap (Berlin: ``02:30`` fires at ``03:30`` CEST). A tick that lands on
  an instant already produced by another wall time fires once.
- **Overlap** (fall back): a wall time that occurs twice fires at its first occurrence
  only, unless the hour field is ``*`` (then it fires at both: an every-minute schedule keeps
  firing every minute through the repeated hour).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError

if TYPE_CHECKING:
    from croniter import croniter

__all__ = ["CronExpression", "load_zone"]

_UTC = dt.UTC
#: Safety bound of the candidate walk (a valid expression always finds a tick sooner).
_MAX_CANDIDATES = 100_000
#: Offsets change by at most this much around a transition (looked at on both sides).
_NEAR = dt.timedelta(hours=3)


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; a clear :class:`ConfigurationError` for an unknown one."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"timezone={name!r} is invalid: expected an IANA name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"timezone={name!r} is not a known IANA time zone (e.g. 'UTC', 'Europe/Berlin'): {exc}"
        ) from None


class CronExpression:
    """A validated expression in a zone. :meth:`next_after` gives the next tick."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        if not isinstance(expression, str) or not expression.strip():
            raise ConfigurationError(f"cron expression {expression!r} is empty")
        self.expression = " ".join(expression.split())
        self.timezone = timezone
        self.zone = load_zone(timezone)
        self.has_seconds = len(self.expression.split()) == 6
        try:
            probe = self._iter(dt.datetime(2000, 1, 1))
            probe.get_next(dt.datetime)
        except Exception as exc:
            raise ConfigurationError(
                f"invalid cron expression {expression!r}: {exc}. Expected 5 fields"
                " (minute hour day month weekday), 6 with a leading seconds field, or an"
                " alias such as @hourly"
            ) from None
        self.every_hour = probe.expanded[1] == ["*"]

    def __repr__(self) -> str:
        return f"CronExpression({self.expression!r}, {self.timezone!r})"

    def _iter(self, start: dt.datetime) -> croniter:
        from croniter import croniter  # imported on first use: apps without cron skip it

        return croniter(self.expression, start, second_at_beginning=self.has_seconds)

    def _instants(self, wall: dt.datetime) -> Iterator[dt.datetime]:
        """The UTC instants at which naive local time ``wall`` fires (see module doc)."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            yield first.astimezone(_UTC)
            return
        a, b = first.astimezone(_UTC), second.astimezone(_UTC)
        if a < b:  # overlap: the wall time exists twice
            yield a
            if self.every_hour:
                yield b
        else:  # gap: fold=0 keeps the offset from before the change, i.e. shifts forward
            yield a

    def _offsets_around(self, instant: dt.datetime) -> list[dt.timedelta]:
        """UTC offsets in force within a few hours of ``instant`` (both folds)."""
        found = []
        for delta in (-_NEAR, dt.timedelta(0), _NEAR):
            local = (instant + delta).astimezone(self.zone)
            for fold in (0, 1):
                offset = local.replace(fold=fold).utcoffset()
                if offset is not None:
                    found.append(offset)
        return found

    def _earliest_instant(
        self, after: dt.datetime, wall: dt.datetime, until: dt.datetime | None
    ) -> dt.datetime | None:
        """Walk wall times from ``wall`` on. Without ``until``: the first instant after
        ``after``. With it: the earliest instant after ``after`` of the walls before
        ``until``. None if there is none (or none within the safety bound)."""
        walk = self._iter(wall - dt.timedelta(seconds=1))
        best: dt.datetime | None = None
        for _ in range(_MAX_CANDIDATES):
            wall = walk.get_next(dt.datetime)
            if until is not None and wall >= until:
                break
            found = [i for i in self._instants(wall) if i > after]
            if found and (best is None or min(found) < best):
                best = min(found)
            if best is not None and until is None:
                break
        return best

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms`` (epoch ms), in epoch ms.

        A wall time ``W`` in force at offset ``o`` is the instant ``W - o``. First the walk
        from ``after`` read at its own offset finds a tick ``best``; then, for each offset
        in force nearby, only the walls of ``(after + o, best + o)`` can hold an earlier tick,
        a window as short as the distance to ``best``.
        """
        after = dt.datetime.fromtimestamp(after_ms / 1000, _UTC)
        naive = after.replace(tzinfo=None, microsecond=0)
        own = after.astimezone(self.zone).utcoffset() or dt.timedelta(0)
        best = self._earliest_instant(after, naive + own, None)
        if best is None:
            raise ConfigurationError(f"cron expression {self.expression!r} never fires")
        for offset in sorted(set(self._offsets_around(after))):
            until = best.replace(tzinfo=None) + offset + dt.timedelta(seconds=1)
            earlier = self._earliest_instant(after, naive + offset, until)
            if earlier is not None and earlier < best:
                best = earlier
        return int(best.timestamp() * 1000)

    def ticks_after(self, after_ms: int, count: int) -> list[int]:
        """The next ``count`` ticks after ``after_ms``."""
        ticks: list[int] = []
        for _ in range(count):
            after_ms = self.next_after(after_ms)
            ticks.append(after_ms)
        return ticks

    def ticks_between(self, start_ms: int, end_ms: int, limit: int = 100_000) -> int:
        """How many ticks lie strictly between ``start_ms`` and ``end_ms`` (capped)."""
        count, tick = 0, self.next_after(start_ms)
        while tick < end_ms and count < limit:
            count += 1
            tick = self.next_after(tick)
        return count
