"""The namespace's pub/sub channels that workers follow (cancellations, cron changes):
the text of every message, for as long as the caller iterates."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from .records import text
from .session import Session

__all__ = ["channel_messages"]


async def channel_messages(session: Session, channel: str) -> AsyncGenerator[str, None]:
    pubsub = session.blocking.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                yield text(message["data"]) or ""
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
