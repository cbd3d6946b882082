"""The worker registry: one hash per worker with a TTL, and a ZSET of ids by expiry."""

from __future__ import annotations

import json

from rediq_core.broker import WorkerRecord

from .records import text
from .session import Session

__all__ = ["heartbeat", "unregister_worker", "workers"]


async def heartbeat(session: Session, worker: WorkerRecord, ttl_s: int) -> None:
    keys = session.keys
    await session.scripts.heartbeat(
        session.client,
        [keys.workers, keys.worker(worker.id)],
        [
            worker.id,
            max(int(ttl_s), 1),
            worker.name,
            json.dumps(list(worker.queues)),
            json.dumps(dict(worker.info), default=str),
        ],
    )


async def unregister_worker(session: Session, worker_id: str) -> None:
    async with session.client.pipeline(transaction=True) as pipe:
        pipe.zrem(session.keys.workers, worker_id)
        pipe.delete(session.keys.worker(worker_id))
        await pipe.execute()


def _json(raw: bytes | None, default: object) -> object:
    try:
        return json.loads(raw) if raw else default
    except ValueError:
        return default


async def workers(session: Session) -> list[WorkerRecord]:
    seconds, micros = await session.client.time()
    now_ms = seconds * 1000 + micros // 1000
    ids = [
        text(i) or ""
        for i in await session.client.zrangebyscore(session.keys.workers, now_ms, "+inf")
    ]
    async with session.client.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(session.keys.worker(worker_id))
        entries = await pipe.execute()
    found: list[WorkerRecord] = []
    for worker_id, entry in zip(ids, entries, strict=True):
        if not entry:
            continue
        queues = _json(entry.get(b"queues"), [])
        info = _json(entry.get(b"info"), {})
        found.append(
            WorkerRecord(
                id=worker_id,
                name=text(entry.get(b"name")) or worker_id,
                queues=tuple(str(q) for q in queues) if isinstance(queues, list) else (),
                heartbeat_age_s=max(0.0, (now_ms - int(entry.get(b"heartbeat_ms", now_ms))) / 1000),
                info=info if isinstance(info, dict) else {},
            )
        )
    return found
