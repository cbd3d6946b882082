"""The worker side: fetch (claim + wake-key wait), lease extension, settlement, release.

Every command of a fetch runs on the blocking client's pool: a fetcher holds at most one
connection there, and never takes one of the main pool's ``max_connections``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from rediq_core.broker import Delivery, FetchBatch, Rejected, Settlement, TaskError
from rediq_core.message import MalformedMessageError, TaskMessage

from .keys import QueueKeys
from .records import encode_error, text
from .scripts import run_batch
from .session import Session

__all__ = ["extend_leases", "fetch", "release", "settle"]

log = logging.getLogger("rediq.broker.redis")

_background: set[asyncio.Task[None]] = set()

#: Back-off bounds after a server-side error in the claim step (e.g. a wrong key type).
_ERROR_BACKOFF_S = (0.05, 5.0)


@dataclass(frozen=True, slots=True)
class _Claim:
    next_delay_ms: int
    leased: list[Any]
    exhausted: list[str]
    cancelled: list[str]


async def _claim(
    session: Session, keys: QueueKeys, worker_id: str, limit: int, lease_ms: int
) -> _Claim:
    s = session.settings
    reply = await session.scripts.claim(
        session.blocking,
        keys.all,
        [
            worker_id,
            limit,
            lease_ms,
            s.max_deliveries,
            s.dead_letter_ttl_s * 1000,
            s.dead_letter_max,
            s.claim_bound,
        ],
    )
    return _Claim(
        next_delay_ms=int(reply[1]),
        leased=list(reply[2]),
        exhausted=[text(i) or "" for i in reply[3]],
        cancelled=[text(i) or "" for i in reply[4]],
    )


async def _dead_letter(
    session: Session, keys: QueueKeys, worker_id: str, task_id: str, error: TaskError
) -> None:
    s = session.settings
    await session.scripts.ack_failure(
        session.blocking,
        keys.for_task(task_id),
        [
            worker_id,
            task_id,
            encode_error(error),
            "",
            s.dead_letter_ttl_s * 1000,
            s.dead_letter_max,
        ],
    )


def _decode(row: Sequence[Any]) -> TaskMessage:
    task_id, envelope, payload = text(row[0]) or "", row[1], row[2]
    if envelope is None:
        raise MalformedMessageError(f"task {task_id}: envelope missing")
    if payload is None:
        raise MalformedMessageError(f"task {task_id}: payload missing")
    return TaskMessage.from_parts(task_id, envelope, payload)


async def _finish_claim(
    session: Session, keys: QueueKeys, worker_id: str, claim: _Claim
) -> FetchBatch:
    """Decode leased rows; dead-letter unusable ones; finish expired special leases."""
    deliveries: list[Delivery] = []
    rejected: list[Rejected] = []
    rows = claim.leased
    for i in range(0, len(rows), 6):
        row = rows[i : i + 6]
        try:
            message = _decode(row)
        except MalformedMessageError as exc:
            task_id = text(row[0]) or ""
            await _dead_letter(
                session, keys, worker_id, task_id, TaskError("MalformedMessageError", str(exc))
            )
            rejected.append(Rejected(task_id, str(exc)))
            continue
        deliveries.append(Delivery(message, int(row[3]), int(row[4]), int(row[5])))
    s = session.settings
    for task_id in claim.exhausted:
        reason = (
            f"killed its worker {s.max_deliveries} times: its lease expired after"
            f" {s.max_deliveries} deliveries"
        )
        await _dead_letter(session, keys, "", task_id, TaskError("LeaseExpiredError", reason))
    for task_id in claim.cancelled:
        await session.scripts.cancel(
            session.blocking, keys.for_task(task_id), [task_id, session.keys.cancel_channel]
        )
    return FetchBatch(deliveries, rejected)


async def _push_wake(session: Session, keys: QueueKeys) -> None:
    """Put back a wake token a cancelled wait may have taken (a spurious one is harmless)."""
    async with session.blocking.pipeline(transaction=True) as pipe:
        pipe.rpush(keys.key("wake"), "1")
        pipe.ltrim(keys.key("wake"), 0, 0)
        await pipe.execute()


def _spawn_push_wake(session: Session, keys: QueueKeys) -> None:
    task = asyncio.get_running_loop().create_task(_push_wake(session, keys))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _wait_for_wake(session: Session, keys: QueueKeys, next_delay_ms: int) -> None:
    """Block on the wake key until a token arrives or the next deadline passes.

    Redis checks blocking timeouts only every 1/hz s (100 ms by default), so the deadline
    is kept by an asyncio timer; the server-side timeout (1 s later) is only a backstop.
    Either way the wait may have taken a token: one is put back (a spurious one is
    harmless).
    """
    cap = session.settings.wake_safety_cap_s
    timeout = cap if next_delay_ms < 0 else min(next_delay_ms / 1000, cap)
    blpop = session.blocking.blpop([keys.key("wake")], timeout=timeout + 1.0)
    try:
        await asyncio.wait_for(blpop, timeout)
    except TimeoutError:
        _spawn_push_wake(session, keys)
    except asyncio.CancelledError:
        _spawn_push_wake(session, keys)
        raise


async def fetch(
    session: Session, queue: str, worker_id: str, limit: int, lease_ms: int
) -> FetchBatch:
    keys = session.keys.queue(queue)
    backoff = _ERROR_BACKOFF_S[0]
    while True:
        try:
            claim = await _claim(session, keys, worker_id, limit, lease_ms)
            batch = await _finish_claim(session, keys, worker_id, claim)
        except ResponseError as exc:
            log.error(
                "fetch from queue %r failed on the server (%s); retrying in %.2f s."
                " Check the queue's keys for foreign data (docs/broker.md).",
                queue,
                exc,
                backoff,
            )
            await asyncio.sleep(backoff)  # error back-off, not the hot path
            backoff = min(backoff * 2, _ERROR_BACKOFF_S[1])
            continue
        backoff = _ERROR_BACKOFF_S[0]
        if batch.deliveries or batch.rejected:
            return batch
        if claim.exhausted or claim.cancelled or claim.next_delay_ms == 0:
            continue
        await _wait_for_wake(session, keys, claim.next_delay_ms)


async def extend_leases(
    session: Session, worker_id: str, leases: Mapping[str, Sequence[str]], lease_ms: int
) -> set[str]:
    queues = [q for q, ids in leases.items() if ids]
    if not queues:
        return set()
    calls = [
        session.scripts.extend_leases.call(
            session.keys.queue(queue).all, [worker_id, lease_ms, *leases[queue]]
        )
        for queue in queues
    ]
    replies = await run_batch(session.client, calls)
    return {text(i) or "" for reply in replies for i in reply}


async def settle(session: Session, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
    if not settlements:
        return []
    s = session.settings
    calls = []
    for item in settlements:
        keys = session.keys.queue(item.queue).for_task(item.task_id)
        if item.error is None:
            calls.append(
                session.scripts.ack_success.call(
                    keys, [worker_id, item.task_id, item.result or b""]
                )
            )
        else:
            retry = "" if item.retry_at_ms is None else item.retry_at_ms
            calls.append(
                session.scripts.ack_failure.call(
                    keys,
                    [
                        worker_id,
                        item.task_id,
                        encode_error(item.error),
                        retry,
                        s.dead_letter_ttl_s * 1000,
                        s.dead_letter_max,
                    ],
                )
            )
    replies = await run_batch(session.client, calls)
    return [int(r) != 0 for r in replies]


async def release(session: Session, worker_id: str, leases: Mapping[str, Sequence[str]]) -> int:
    queues = [q for q, ids in leases.items() if ids]
    if not queues:
        return 0
    calls = []
    for queue in queues:
        keys = session.keys.queue(queue)
        ids = list(leases[queue])
        task_keys = [k for i in ids for k in (keys.result(i), keys.done(i))]
        calls.append(session.scripts.release.call([*keys.all, *task_keys], [worker_id, *ids]))
    replies = await run_batch(session.client, calls)
    return sum(int(r) for r in replies)
