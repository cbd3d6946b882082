"""``CronExpression.next_after`` agrees with a brute-force reference around DST changes.

The reference enumerates every wall time of a wide window, maps each to its instants with
the documented rule (``_instants``) and takes the first instant after the given time; the
implementation searches much less, and must find the same tick.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from rediq_core.crontab import CronExpression

EXPRESSIONS = (
    "* * * * *",
    "*/7 * * * *",
    "30 2 * * *",
    "0 * * * *",
    "15,45 1-3 * * *",
    "*/20 * * * * *",
    "0 30 2 * * *",
    "@hourly",
    "0 3 * * *",
    "59 1 * * *",
    "*/30 * * * *",
    "10 2 * * 0",
)
#: (zone, a DST change in UTC): spring forward and fall back of 2026.
CHANGES = (
    ("Europe/Berlin", dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC)),
    ("Europe/Berlin", dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC)),
    ("America/New_York", dt.datetime(2026, 3, 8, 7, tzinfo=dt.UTC)),
    ("America/New_York", dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC)),
    ("Australia/Lord_Howe", dt.datetime(2026, 4, 4, 15, tzinfo=dt.UTC)),
)


def reference(cron: CronExpression, after_ms: int) -> int:
    after = dt.datetime.fromtimestamp(after_ms / 1000, dt.UTC)
    wall = (after - dt.timedelta(hours=16)).replace(tzinfo=None, microsecond=0)
    walk = cron._iter(wall)
    best: dt.datetime | None = None
    end = after.replace(tzinfo=None) + dt.timedelta(hours=40)
    while wall < end:
        wall = walk.get_next(dt.datetime)
        for instant in cron._instants(wall):
            if instant > after and (best is None or instant < best):
                best = instant
    assert best is not None
    return int(best.timestamp() * 1000)


@settings(max_examples=200, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    change=st.sampled_from(CHANGES),
    offset_s=st.integers(min_value=-6 * 3600, max_value=6 * 3600),
    millis=st.integers(min_value=0, max_value=999),
)
def test_next_after_matches_the_reference(
    expression: str, change: tuple[str, dt.datetime], offset_s: int, millis: int
) -> None:
    zone, moment = change
    cron = CronExpression(expression, zone)
    after_ms = int(moment.timestamp() * 1000) + offset_s * 1000 + millis
    assert cron.next_after(after_ms) == reference(cron, after_ms)
