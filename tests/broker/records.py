"""Reading and changing a task's record (protocol 2) from the tests, with a raw client."""

from __future__ import annotations

from redis.asyncio import Redis

from rediq_redis.layout import RECORD_FIELDS, parse_record

__all__ = ["record_state", "set_record_fields"]


async def record_state(redis: Redis, prefix: str, task_id: str) -> bytes | None:
    """The state field of the task's record (None: no record)."""
    record = parse_record(await redis.hget(f"{prefix}:tasks", task_id))
    return record.fields["state"].encode() if record else None


async def set_record_fields(redis: Redis, prefix: str, task_id: str, **fields: object) -> None:
    """Store the task's record again with some header fields changed."""
    raw = await redis.hget(f"{prefix}:tasks", task_id)
    assert raw is not None, f"task {task_id} has no record"
    parts = raw.split(b"|", len(RECORD_FIELDS))
    for name, value in fields.items():
        parts[RECORD_FIELDS.index(name)] = str(value).encode()
    await redis.hset(f"{prefix}:tasks", task_id, b"|".join(parts))
