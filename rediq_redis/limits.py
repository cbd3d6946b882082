"""The limits role over Redis: the queue's own limits and the use of every limit
(``set_limits.lua``; the limits themselves are checked by the claim, ``claim.lua``)."""

from __future__ import annotations

from collections import Counter

from rediq_core.flow import LimitUse, QueueFlow, QueueLimits, Rate

from .layout import lane_of
from .records import text
from .session import Session

__all__ = ["queue_flow", "rate_text", "set_limits"]

#: At most this many limited tasks are counted per call (a longer backlog counts as this).
_COUNTED = 100_000


def rate_text(rate: Rate) -> str:
    """A rate as the ``limits`` hash stores it."""
    return f"{rate.count}/{rate.period_ms}/{rate.burst}"


def _rate(stored: bytes | None) -> Rate | None:
    parts = (text(stored) or "").split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return Rate(int(parts[0]), int(parts[1]), int(parts[2]))


async def set_limits(session: Session, queue: str, limits: QueueLimits) -> None:
    await session.client.sadd(session.keys.queues, queue)
    args = [
        "" if limits.concurrency is None else limits.concurrency,
        "" if limits.rate is None else rate_text(limits.rate),
    ]
    await session.scripts.set_limits(session.client, session.keys.queue(queue).all, args)


async def queue_flow(session: Session, queue: str) -> QueueFlow:
    keys = session.keys.queue(queue)
    async with session.client.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.key("limits"), "concurrency", "rate")
        pipe.zrange(keys.key("slots"), 0, -1)
        pipe.zrange(keys.key("parked"), 0, _COUNTED - 1)
        pipe.zrange(keys.key("limits_due"), 0, -1, withscores=True)
        (concurrency, rate), slots, parked, due = await pipe.execute()
    running = Counter(lane_of(text(m) or "") for m in slots)
    waiting = Counter(lane_of(text(m) or "") for m in parked)
    next_start = {text(m) or "": int(score) for m, score in due}
    names = sorted({*running, *waiting, *next_start})
    limits = QueueLimits(
        concurrency=int(concurrency) if concurrency is not None else None, rate=_rate(rate)
    )
    uses = tuple(
        LimitUse(
            name=name,
            running=running[name],
            limited=waiting[name],
            next_start_ms=next_start.get(name),
        )
        for name in names
    )
    return QueueFlow(queue=queue, limits=limits, uses=uses)
