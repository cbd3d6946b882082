"""Read-only checks of what the Redis broker keeps: the protocol invariants and the keys."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from rediq_redis.keys import QUEUE_KEY_NAMES, QueueKeys
from rediq_redis.layout import member_id

__all__ = ["QueueState", "audit_queue", "namespace_keys", "reply_keys_expire"]

_HASHES = (
    "envelope",
    "payload",
    "state",
    "retried",
    "deliveries",
    "owner",
    "error",
    "position",
    "lost",
)


def _s(value: bytes) -> str:
    return value.decode()


@dataclass(frozen=True)
class QueueState:
    """Where each task id is: pending / scheduled / active / dead."""

    pending: list[str]  # in priority order
    scheduled: set[str]
    active: set[str]
    dead: set[str]
    states: dict[str, str]
    owners: dict[str, str]
    deliveries: dict[str, int]
    retried: dict[str, int]
    lost: dict[str, int]

    def where(self, task_id: str) -> str | None:
        return self.states.get(task_id)


async def audit_queue(
    redis: Redis, namespace: str, queue: str, *, complete: bool = True
) -> QueueState:
    """Check invariants I1/I2 of docs/broker.md and return the queue's state.

    ``complete=False`` accepts dead letters whose envelope or payload was lost (bad data).
    """
    keys = QueueKeys(namespace, queue)
    for name in QUEUE_KEY_NAMES:
        kind = _s(await redis.type(keys.key(name)))
        expected = {
            "pending": "zset",
            "scheduled": "zset",
            "active": "zset",
            "dead": "zset",
            "cancel": "set",
            "wake": "list",
            "seq": "string",
            "paused": "string",
            "groups": "zset",
            "cron_paused": "set",
        }.get(name, "hash")
        assert kind in (expected, "none"), f"{name} is a {kind}"
    pending_members = [_s(m) for m in await redis.zrange(keys.key("pending"), 0, -1)]
    pending = [member_id(m) for m in pending_members]
    scheduled = {_s(m) for m in await redis.zrange(keys.key("scheduled"), 0, -1)}
    active = {_s(m) for m in await redis.zrange(keys.key("active"), 0, -1)}
    dead = {_s(m) for m in await redis.zrange(keys.key("dead"), 0, -1)}
    hashes = {
        name: {
            _s(k): _s(v) if name != "payload" else ""
            for k, v in (await redis.hgetall(keys.key(name))).items()
        }
        for name in _HASHES
    }
    states = hashes["state"]
    assert len(pending) == len(set(pending)), "a task is twice in pending"
    places = {"pending": set(pending), "scheduled": scheduled, "active": active, "failed": dead}
    seen: dict[str, str] = {}
    for place, ids in places.items():
        for task_id in ids:
            assert task_id not in seen, f"{task_id} is both {seen[task_id]} and {place}"
            seen[task_id] = place
    assert seen == states, f"state hash {states} disagrees with structures {seen}"
    for member, task_id in zip(pending_members, pending, strict=True):
        assert hashes["position"].get(task_id) == member, f"{task_id} position"
    for name in ("envelope", "payload", "retried", "deliveries"):
        if complete or name in ("retried", "deliveries"):
            assert set(hashes[name]) == set(states), f"{name} fields {set(hashes[name])}"
        else:
            assert set(hashes[name]) <= set(states), f"{name} fields {set(hashes[name])}"
    assert set(hashes["owner"]) == active, "owner fields must be exactly the active ids"
    assert set(hashes["error"]) <= set(states)
    assert set(hashes["position"]) <= set(states)
    assert set(hashes["lost"]) <= set(states)
    started = {_s(k) for k in await redis.hkeys(keys.key("started"))}
    assert started <= set(states), f"start times {started - set(states)} of forgotten tasks"
    indexed = {_s(m).partition("\n")[2] for m in await redis.zrange(keys.key("groups"), 0, -1)}
    assert indexed <= set(states), f"group index entries {indexed - set(states)} of forgotten tasks"
    cancel = {_s(m) for m in await redis.smembers(keys.key("cancel"))}
    assert cancel <= active, f"cancel flags {cancel - active} on inactive tasks"
    assert await redis.llen(keys.key("wake")) <= 1, "more than one wake token"
    return QueueState(
        pending=pending,
        scheduled=scheduled,
        active=active,
        dead=dead,
        states=states,
        owners=hashes["owner"],
        deliveries={k: int(v) for k, v in hashes["deliveries"].items()},
        retried={k: int(v) for k, v in hashes["retried"].items()},
        lost={k: int(v) for k, v in hashes["lost"].items() if int(v)},
    )


async def namespace_keys(redis: Redis, namespace: str) -> set[str]:
    """Every key of the namespace (tags ``{NS}`` and ``{NS:queue}``)."""
    return {_s(k) async for k in redis.scan_iter(match=f"{{{namespace}[:}}]*", count=1000)}


async def reply_keys_expire(redis: Redis, namespace: str, window_ms: int) -> None:
    """Every reply key (a call's remembered answer) has a TTL within the replay window;
    wait (bounded) until all of them are gone."""
    replies = {k for k in await namespace_keys(redis, namespace) if ":reply:" in k}
    for key in replies:
        assert 0 < await redis.pttl(key) <= window_ms, f"{key} would outlive the window"
    deadline = asyncio.get_running_loop().time() + window_ms / 1000 + 2
    while any(":reply:" in k for k in await namespace_keys(redis, namespace)):
        assert asyncio.get_running_loop().time() < deadline, "reply keys did not expire"
        await asyncio.sleep(0.05)
