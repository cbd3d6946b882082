"""Asking workers to stop: a flag in the worker's registry entry plus an announcement on
the namespace's control channel (the flag covers a missed announcement)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

from .records import text
from .session import Session

__all__ = ["stop_requests", "stop_workers"]


async def stop_workers(session: Session, worker_ids: Sequence[str]) -> int:
    if not worker_ids:
        return 0
    keys = [session.keys.worker(i) for i in worker_ids]
    reply = await session.scripts.stop_workers(
        session.client, keys, [session.keys.control_channel, *worker_ids]
    )
    return int(reply)


async def stop_requests(session: Session, worker_id: str) -> AsyncGenerator[None, None]:
    pubsub = session.blocking.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(session.keys.control_channel)
    try:
        if await session.client.hget(session.keys.worker(worker_id), "stop"):
            yield None
        async for message in pubsub.listen():
            if message.get("type") == "message" and text(message["data"]) == worker_id:
                yield None
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
