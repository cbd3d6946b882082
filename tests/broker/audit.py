"""Read-only checks of what the Redis broker keeps: the protocol invariants and the keys."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

from redis.asyncio import Redis

from rediq_core.defaults import ATTEMPT_ERRORS_KEPT
from rediq_redis.keys import QUEUE_KEY_NAMES, QueueKeys
from rediq_redis.layout import (
    HISTORY_HOURS,
    HISTORY_MINUTES,
    HISTORY_RECORD,
    HISTORY_SIZE,
    HISTORY_TTL_S,
    UNBLOCK_TTL_MS,
    Record,
    lane_of,
    member_id,
    parked_id,
    parse_record,
    pending_member,
)

__all__ = [
    "QueueState",
    "audit_events",
    "audit_queue",
    "bounded_leftovers",
    "namespace_keys",
    "tombstones_expire",
]

#: The type of each queue key that is not a hash.
_TYPES = {
    "pending": "zset",
    "scheduled": "zset",
    "active": "zset",
    "dead": "zset",
    "holders": "zset",
    "cancel": "set",
    "wake": "list",
    "idle": "list",
    "seq": "string",
    "paused": "string",
    "history": "string",
    "groups": "zset",
    "cron_paused": "set",
    "waiting": "zset",
    "outbox": "zset",
    "slots": "zset",
    "parked": "zset",
    "rates": "zset",
    "limits_due": "zset",
    "fair": "zset",
    "expiry": "zset",
    "events": "stream",
}
#: The fixed size of a queue's metrics history (a day of minutes, 14 days of hours).
HISTORY_BYTES = (HISTORY_MINUTES + HISTORY_HOURS) * HISTORY_RECORD.size
assert HISTORY_BYTES == HISTORY_SIZE
#: Entries a stream trimmed with MAXLEN ~ N may hold beyond N: Redis trims whole nodes
#: (stream-node-max-entries, 100 by default).
STREAM_NODE_ENTRIES = 100
#: The tombstone hashes (replay memory): id -> enqueue nonce, "#" -> generation.
TOMBSTONES = ("ended_a", "ended_b")


def _s(value: bytes) -> str:
    return value.decode("utf-8", "replace")  # a claim nonce in `workers` is raw bytes


@dataclass(frozen=True)
class QueueState:
    """Where each task id is: pending / waiting / scheduled / active / dead."""

    pending: list[str]  # in priority order
    scheduled: set[str]
    active: set[str]
    dead: set[str]
    states: dict[str, str]
    owners: dict[str, str]  # active id -> the worker holding its lease
    deliveries: dict[str, int]
    retried: dict[str, int]
    lost: dict[str, int]  # only the non-zero counts
    records: dict[str, Record]

    def where(self, task_id: str) -> str | None:
        return self.states.get(task_id)


def _enveloped(record: Record) -> bool:
    try:
        return isinstance(json.loads(record.envelope), dict)
    except ValueError:
        return False


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def audit_queue(
    redis: Redis, namespace: str, queue: str, *, complete: bool = True
) -> QueueState:
    """Check invariants I1/I2 of the Lua prelude (docs/broker.md) and return the queue's
    state.

    ``complete=False`` accepts records whose envelope is not a JSON object (bad data,
    dead-lettered with its reason); every record must still be a record.
    """
    keys = QueueKeys(namespace, queue)
    for name in QUEUE_KEY_NAMES:
        kind = _s(await redis.type(keys.key(name)))
        expected = _TYPES.get(name, "hash")
        assert kind in (expected, "none"), f"{name} is a {kind}"
    pending_members = [_s(m) for m in await redis.zrange(keys.key("pending"), 0, -1)]
    pending = [member_id(m) for m in pending_members]
    scheduled = {_s(m) for m in await redis.zrange(keys.key("scheduled"), 0, -1)}
    active_scores = {
        _s(m): s for m, s in await redis.zrange(keys.key("active"), 0, -1, withscores=True)
    }
    active = set(active_scores)
    dead = {_s(m) for m in await redis.zrange(keys.key("dead"), 0, -1)}
    waiting = {_s(m) for m in await redis.zrange(keys.key("waiting"), 0, -1)}
    parked_members = [_s(m) for m in await redis.zrange(keys.key("parked"), 0, -1)]
    parked = [parked_id(m) for m in parked_members]
    slots = [_s(m) for m in await redis.zrange(keys.key("slots"), 0, -1)]
    records: dict[str, Record] = {}
    for raw_id, raw in (await redis.hgetall(keys.key("tasks"))).items():
        record = parse_record(raw)
        assert record is not None, f"{_s(raw_id)}: not a record: {raw[:80]!r}"
        assert not complete or _enveloped(record), f"{_s(raw_id)}: envelope {record.envelope!r}"
        records[_s(raw_id)] = record
    states = {task_id: r.fields["state"] for task_id, r in records.items()}

    assert len(pending) == len(set(pending)), "a task is twice in pending"
    places = {
        "pending": set(pending),
        "waiting": waiting,
        "limited": set(parked),
        "scheduled": scheduled,
        "active": active,
        "failed": dead,
    }
    seen: dict[str, str] = {}
    for place, ids in places.items():
        for task_id in ids:
            assert task_id not in seen, f"{task_id} is both {seen[task_id]} and {place}"
            seen[task_id] = place
    assert seen == states, f"records {states} disagree with structures {seen}"
    joins = {_s(k): _s(v) for k, v in (await redis.hgetall(keys.key("joins"))).items()}
    counted = {k for k in joins if not k.endswith(":due")}
    assert counted == waiting, f"join counts {counted} disagree with waiting steps {waiting}"
    for member, task_id in zip(pending_members, pending, strict=True):
        position = records[task_id].number("position")
        assert pending_member(position, task_id) == member, f"{task_id} position"
    # limits: a limited task is in one lane; a slot is held by a running task (I8)
    assert len(parked) == len(set(parked)), f"a task is in two lanes: {parked_members}"
    for member in slots:
        holder = member[len(lane_of(member)) + 1 :]
        assert holder in active, f"slot {member!r} is held by a task that is not running"
    # times: an expiry or a deadline belongs to a stored task; an expiry to one not started
    for member in [_s(m) for m in await redis.zrange(keys.key("expiry"), 0, -1)]:
        kind, task_id = member[:1], member[1:]
        assert kind in ("x", "d") and task_id in records, f"expiry member {member!r} is stale"
        assert kind == "d" or task_id not in active, f"{task_id} is running and may expire"
    for name in ("unique", "debounce"):  # a key is held by a stored task
        for key, holder in (await redis.hgetall(keys.key(name))).items():
            assert _s(holder) in records, f"{name} key {_s(key)!r} is held by a gone task"

    # leases: an active record names its holder, which is in `holders` (I2)
    holders = {_s(m): s for m, s in await redis.zrange(keys.key("holders"), 0, -1, withscores=True)}
    workers = {_s(k): _s(v) for k, v in (await redis.hgetall(keys.key("workers"))).items()}
    idle = [_s(w) for w in await redis.lrange(keys.key("idle"), 0, -1)]
    owners: dict[str, str] = {}
    for task_id, record in records.items():
        holder = record.fields["holder"]
        if task_id in active:
            assert holder in holders, f"{task_id}: holder {holder!r} is not in holders"
            assert active_scores[task_id] == int(holder), (
                f"{task_id}: active score {active_scores[task_id]} vs holder {holder!r}"
            )
            owner = workers.get(f"#{holder}")
            assert owner is not None, f"holder {holder} has no worker"
            assert record.fields["worker"] == owner.replace("|", "/"), f"{task_id} worker"
            owners[task_id] = owner
        else:
            assert holder == "", f"{task_id} ({states[task_id]}) names holder {holder!r}"
    _check_workers(holders, workers, idle)

    errors = {_s(k) for k in await redis.hkeys(keys.key("errors"))}
    assert errors <= set(states), f"errors {errors - set(states)} of forgotten tasks"
    assert dead <= errors, f"dead letters {dead - errors} without their error"
    await _check_attempts(redis, keys, records)
    indexed = {_s(m).partition("\n")[2] for m in await redis.zrange(keys.key("groups"), 0, -1)}
    assert indexed <= set(states), f"group index entries {indexed - set(states)} of forgotten tasks"
    cancel = {_s(m) for m in await redis.smembers(keys.key("cancel"))}
    assert cancel <= active, f"cancel flags {cancel - active} on inactive tasks"
    assert await redis.llen(keys.key("wake")) <= 1, "more than one wake token"
    await _check_trails(redis, keys, set(records))
    return QueueState(
        pending=pending,
        scheduled=scheduled,
        active=active,
        dead=dead,
        states=states,
        owners=owners,
        deliveries={k: r.number("deliveries") for k, r in records.items()},
        retried={k: r.number("retried") for k, r in records.items()},
        lost={k: r.number("lost") for k, r in records.items() if r.number("lost")},
        records=records,
    )


async def _check_trails(redis: Redis, keys: QueueKeys, stored: set[str]) -> None:
    """A trail (progress, logs) belongs to a stored task, or lives no longer than the
    result it was kept with."""
    prefix = keys.trail("")
    async for raw in redis.scan_iter(match=f"{_glob(prefix)}*", count=1000):
        key = _s(raw)
        task_id = key[len(prefix) :]
        if task_id in stored:
            continue
        ttl = await redis.pttl(key)
        result_ttl = await redis.pttl(keys.result(task_id))
        assert ttl > 0, f"{key}: the trail of a forgotten task, without a TTL"
        assert result_ttl > 0 and ttl <= result_ttl + 1000, (
            f"{key} outlives its result ({ttl} ms vs {result_ttl} ms)"
        )


def _check_workers(holders: dict[str, float], workers: dict[str, str], idle: list[str]) -> None:
    """``workers`` maps each holder number back to its worker ("#<n>"), each worker to
    its holder, ">"<worker> to its last claim and "<"<worker> to its registration as
    waiting (in ``idle``, once) or "h" (a task was handed to it), and "!" to the queue's
    timekeeper; every number it names is a holder."""
    numbers = {f[1:] for f in workers if f.startswith("#")}
    assert numbers == set(holders), f"holders {set(holders)} vs workers' numbers {numbers}"
    assert len(idle) == len(set(idle)), f"a worker is twice in idle: {idle}"
    waiting = {f[1:] for f, v in workers.items() if f.startswith("<") and v != "h"}
    assert waiting <= set(idle), f"waiting workers {waiting - set(idle)} not in idle"
    names = {f for f in workers if not f.startswith(("#", ">", "<", "!"))}
    for name in names:
        assert workers[name] in holders, f"worker {name} maps to a gone holder {workers[name]}"
        assert workers[f"#{workers[name]}"] == name, f"holder of {name} names another worker"
    claims = {f[1:] for f in workers if f.startswith(">")}
    assert claims <= names, f"last claims {claims - names} of workers without a holder"


async def _check_attempts(redis: Redis, keys: QueueKeys, records: dict[str, Record]) -> None:
    """A task's kept failed attempts exist only with its record, once it was retried, and
    are bounded."""
    prefix = keys.attempts("")
    async for raw in redis.scan_iter(match=f"{_glob(prefix)}*", count=1000):
        key = _s(raw)
        task_id = key[len(prefix) :]
        record = records.get(task_id)
        assert record is not None, f"{key}: the failed attempts of a forgotten task"
        assert record.number("retried") > 0, f"{key}: attempts of a task never retried"
        assert await redis.llen(key) <= ATTEMPT_ERRORS_KEPT, f"{key} is not bounded"


async def namespace_keys(redis: Redis, namespace: str) -> set[str]:
    """Every key of the namespace (tags ``{NS}`` and ``{NS:queue}``)."""
    return {_s(k) async for k in redis.scan_iter(match=f"{{{namespace}[:}}]*", count=1000)}


async def audit_events(redis: Redis, namespace: str, queue: str, length: int) -> list[str]:
    """Check the queue's event stream: absent when ``length`` is 0, else a stream of at
    most about ``length`` entries (whole nodes are trimmed), each naming a known kind and
    a task. Returns the kinds, oldest first."""
    key = QueueKeys(namespace, queue).key("events")
    if length == 0:
        assert not await redis.exists(key), f"{key} exists with the event stream off"
        return []
    entries = await redis.xrange(key)
    assert len(entries) <= length + STREAM_NODE_ENTRIES, f"{key}: {len(entries)} entries"
    from rediq_core.task_events import TaskEventKind

    known = {k.value for k in TaskEventKind}
    kinds = []
    for _, fields in entries:
        kind = _s(fields[b"k"])
        assert kind in known and fields[b"t"], f"{key}: bad entry {fields}"
        kinds.append(kind)
    return kinds


async def bounded_leftovers(redis: Redis, namespace: str, queue: str, window_ms: int) -> set[str]:
    """The queue's keys that may remain once its tasks are gone, besides its counters,
    each checked to be bounded: the tombstone hashes (they expire within two replay
    windows) and the holders of workers whose deadline has not passed yet (a claim
    drops an expired holder), the waiting list of workers registered as waiting, and the
    workers' own lists (they expire). Returns those of them that exist."""
    keys = QueueKeys(namespace, queue)
    found: set[str] = set()
    for name in TOMBSTONES:
        key = keys.key(name)
        if not await redis.exists(key):
            continue
        found.add(key)
        assert 0 < await redis.pttl(key) <= 2 * window_ms, f"{key} would outlive 2 windows"
        assert await redis.hget(key, "#") is not None, f"{key} without its generation"
    holders = {_s(m): s for m, s in await redis.zrange(keys.key("holders"), 0, -1, withscores=True)}
    workers = {_s(k): _s(v) for k, v in (await redis.hgetall(keys.key("workers"))).items()}
    idle = [_s(w) for w in await redis.lrange(keys.key("idle"), 0, -1)]
    _check_workers(holders, workers, idle)
    registered = {f[1:] for f in workers if f.startswith("<")}
    assert set(idle) <= registered, f"idle workers {set(idle) - registered} not registered"
    if idle:
        found.add(keys.key("idle"))
    async for raw in redis.scan_iter(match=f"{_glob(keys.unblock(''))}*", count=1000):
        key = _s(raw)
        assert 0 < await redis.pttl(key) <= UNBLOCK_TTL_MS, f"{key} would not expire"
        found.add(key)
    history = keys.key("history")
    if await redis.exists(history):  # counted in the allowed metadata, checked bounded here
        assert await redis.strlen(history) <= HISTORY_BYTES, f"{history} past its fixed size"
        assert 0 < await redis.ttl(history) <= HISTORY_TTL_S, f"{history} would not expire"
    now = await _server_ms(redis)
    expired = {n: deadline for n, deadline in holders.items() if deadline < now}
    assert not expired, f"expired holders {expired} kept (now {now})"
    found |= {keys.key(n) for n in ("holders", "workers") if await redis.exists(keys.key(n))}
    return found


def _glob(literal: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", literal)


async def tombstones_expire(redis: Redis, namespace: str, queue: str, window_ms: int) -> None:
    """Wait (bounded: two replay windows and some slack) until the queue's tombstone
    hashes are gone."""
    keys = [QueueKeys(namespace, queue).key(name) for name in TOMBSTONES]
    deadline = asyncio.get_running_loop().time() + 2 * window_ms / 1000 + 2
    while await redis.exists(*keys):
        assert asyncio.get_running_loop().time() < deadline, "tombstones did not expire"
        await asyncio.sleep(0.05)
