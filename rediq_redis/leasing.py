"""The worker side: fetch (claim + wake-key wait), lease extension, settlement, release.

Every command of a fetch runs on the blocking client's pool: a fetcher holds at most one
connection there, and never takes one of the main pool's ``max_connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from rediq_core.broker import Delivery, FetchBatch, Lease, Rejected, Settlement, TaskError
from rediq_core.message import MalformedMessageError, TaskMessage

from .cluster import is_cluster
from .keys import QueueKeys, new_nonce
from .records import encode_error, text
from .scripts import ScriptCall, run_batch
from .session import Session

__all__ = ["extend_leases", "fetch", "release", "settle"]

log = logging.getLogger("rediq.broker.redis")

_background: set[asyncio.Task[Any]] = set()

#: Back-off bounds after a server-side error in the claim step (e.g. a wrong key type).
_ERROR_BACKOFF_S = (0.05, 5.0)
_ROW = 7  # fields per leased task in a claim reply
_UNBLOCK_TTL_MS = 60_000


@dataclass(frozen=True, slots=True)
class _Claim:
    next_delay_ms: int
    batch: FetchBatch
    exhausted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def _decode(row: Sequence[Any]) -> TaskMessage:
    task_id, envelope, payload = text(row[0]) or "", row[1], row[2]
    if envelope is None:
        raise MalformedMessageError(f"task {task_id}: envelope missing")
    if payload is None:
        raise MalformedMessageError(f"task {task_id}: payload missing")
    return TaskMessage.from_parts(task_id, envelope, payload)


def _dead_letter_call(
    session: Session, keys: QueueKeys, worker_id: str, lease: Lease | None, error: TaskError
) -> ScriptCall:
    """ack_failure as a final failure: of ``lease`` held by ``worker_id``, or (worker '')
    of an expired lease."""
    s = session.settings
    task_id = lease.task_id if lease else ""
    return session.scripts.ack_failure.call(
        keys.for_call(task_id),
        [
            worker_id,
            task_id,
            "" if lease is None or not worker_id else lease.delivery,
            encode_error(error),
            "",
            s.dead_letter_ttl_s * 1000,
            s.dead_letter_max,
        ],
    )


def _claim_args(
    session: Session, keys: QueueKeys, worker_id: str, limit: int, lease_ms: int
) -> tuple[list[str], list[Any]]:
    s = session.settings
    return (
        [*keys.all, keys.reply(new_nonce())],
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


async def _claim(
    session: Session, keys: QueueKeys, worker_id: str, limit: int, lease_ms: int
) -> _Claim:
    """One claim step, and the finishing calls it asks for (in one round trip)."""
    claim_keys, args = _claim_args(session, keys, worker_id, limit, lease_ms)
    reply = await session.scripts.claim(session.blocking, claim_keys, args)
    return await _claimed(session, keys, worker_id, reply)


async def _claimed(session: Session, keys: QueueKeys, worker_id: str, reply: Any) -> _Claim:
    """A claim's reply, decoded; then its finishing calls."""
    deliveries: list[Delivery] = []
    rejects: list[tuple[Lease, str]] = []
    rows = reply[2]
    for i in range(0, len(rows), _ROW):
        row = rows[i : i + _ROW]
        lease = Lease(text(row[0]) or "", int(row[4]))
        try:
            message = _decode(row)
        except MalformedMessageError as exc:
            rejects.append((lease, str(exc)))
            continue
        deliveries.append(Delivery(message, int(row[3]), lease.delivery, int(row[5]), int(row[6])))
    claim = _Claim(
        next_delay_ms=int(reply[1]),
        batch=FetchBatch(deliveries, [Rejected(lease.task_id, why) for lease, why in rejects]),
        exhausted=[text(i) or "" for i in reply[3]],
        cancelled=[text(i) or "" for i in reply[4]],
    )
    await _finish(session, keys, worker_id, claim, rejects)
    return claim


async def _finish(
    session: Session,
    keys: QueueKeys,
    worker_id: str,
    claim: _Claim,
    rejects: list[tuple[Lease, str]],
) -> None:
    """Dead-letter unusable rows and lost-too-often leases, end cancelled expired ones.

    One round trip. If it fails, nothing is lost: an unusable row's lease, or the expired
    lease, stays in ``active`` and a later claim finishes it; the claim's deliveries are
    delivered all the same.
    """
    s = session.settings
    reason = (
        f"lost its lease {s.max_deliveries} times: its worker died or stalled while"
        " running it each time"
    )
    calls = [
        *(
            _dead_letter_call(
                session, keys, worker_id, lease, TaskError("MalformedMessageError", why)
            )
            for lease, why in rejects
        ),
        *(
            _dead_letter_call(
                session, keys, "", Lease(task_id, 0), TaskError("LeaseExpiredError", reason)
            )
            for task_id in claim.exhausted
        ),
        *(
            session.scripts.cancel.call(
                keys.for_call(task_id), [task_id, session.keys.cancel_channel]
            )
            for task_id in claim.cancelled
        ),
    ]
    if not calls:
        return
    try:
        await run_batch(session.blocking, calls)
    except RedisError as exc:
        log.error(
            "queue %r: could not finish %d expired or unusable task(s) (%s); a later"
            " fetch finishes them",
            keys.queue,
            len(calls),
            exc,
        )


def _in_background(coro: Any) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _wait_s(session: Session, next_delay_ms: int) -> float:
    """How long an idle fetch may wait for a wake token (``next_delay_ms`` -1: nothing
    scheduled or leased, the safety cap)."""
    cap = session.settings.wake_safety_cap_s
    return cap if next_delay_ms < 0 else min(next_delay_ms / 1000, cap)


async def _wait_then_claim(
    session: Session,
    keys: QueueKeys,
    worker_id: str,
    limit: int,
    lease_ms: int,
    next_delay_ms: int,
) -> _Claim:
    """Block on the wake key until a token arrives or the next deadline passes, then claim.

    The wait (``BLPOP``) and the claim go out together in one pipeline: Redis runs the
    claim as soon as the wait ends, without a round trip back to this process in between
    (the pickup of a task enqueued while workers are idle).

    Redis ends a blocking command's timeout on its timer tick (1/hz s, 100 ms by default),
    so the server-side wait stops one tick short of the deadline; the claim then reports
    the remaining delay and the last tick is an asyncio timer: the wait is never late and
    never cancels the command (which would close the connection). A cancellation from
    outside (shutdown) unblocks the wait through this worker's own unblock key, so the
    claim runs and what it leased is handed back (:func:`_hand_back`).
    """
    timeout = _wait_s(session, next_delay_ms)
    server_part = timeout - session.timer_tick_s
    if server_part <= 0.001 or is_cluster(session.blocking):
        if server_part > 0.001:  # Cluster: a pipeline is split by node; wait, then claim
            await session.blocking.blpop(
                [keys.key("wake"), keys.unblock(worker_id)], timeout=server_part
            )
        else:
            await asyncio.sleep(timeout)  # the last timer tick before a known deadline
        return await _claim(session, keys, worker_id, limit, lease_ms)
    claim_keys, args = _claim_args(session, keys, worker_id, limit, lease_ms)
    script = session.scripts.claim
    async with session.blocking.pipeline(transaction=False) as pipe:
        pipe.blpop([keys.key("wake"), keys.unblock(worker_id)], timeout=server_part)
        pipe.execute_command("EVALSHA", script.sha, len(claim_keys), *claim_keys, *args)
        _, reply = await pipe.execute(raise_on_error=False)
    if isinstance(reply, NoScriptError):  # the server lost its scripts: load, claim again
        return await _claim(session, keys, worker_id, limit, lease_ms)
    if isinstance(reply, Exception):
        raise reply
    return await _claimed(session, keys, worker_id, reply)


async def _hand_back(
    session: Session,
    keys: QueueKeys,
    worker_id: str,
    claiming: asyncio.Future[_Claim],
    waiting: bool,
) -> None:
    """A fetch was cancelled while its claim was in flight: await the claim and release
    what it leased (it may have run on the server already). A claim still ``waiting``
    behind its wake wait is unblocked first, through this worker's unblock key."""
    unblock = keys.unblock(worker_id)
    with contextlib.suppress(Exception):
        if waiting and not claiming.done():
            async with session.client.pipeline(transaction=True) as pipe:
                pipe.rpush(unblock, "1")
                pipe.pexpire(unblock, _UNBLOCK_TTL_MS)  # in case the DEL below fails
                await pipe.execute()
        try:
            claim = await claiming
        finally:
            if waiting:
                await session.client.delete(unblock)
        leases = [d.lease for d in claim.batch.deliveries]
        if leases:
            await release(session, worker_id, {keys.queue: leases})


async def fetch(
    session: Session, queue: str, worker_id: str, limit: int, lease_ms: int, wait: bool = True
) -> FetchBatch:
    """Lease up to ``limit`` ready tasks of ``queue``, waiting (blocked in Redis) until
    there are some; without ``wait``, claim at once and return even with nothing.

    A claim that leased fewer than ``limit`` found the queue without more ready tasks: the
    next fetch of this worker then waits for a wake token first instead of claiming again
    (an empty claim per task at low load). That loses nothing: every step that makes a
    task ready pushes a wake token, and the wait ends at the deadline the claim reported
    (the next scheduled task or lease expiry) at the latest.
    """
    keys = session.keys.queue(queue)
    backoff = _ERROR_BACKOFF_S[0]
    wait_ms: int | None = None  # None: claim at once; else wait first, at most this long
    resume_at = session.drained.pop((queue, worker_id), None)
    if resume_at is not None and wait:
        wait_ms = int((resume_at - time.monotonic()) * 1000)
        wait_ms = wait_ms if wait_ms > 0 else None
    while True:
        step = (
            _claim(session, keys, worker_id, limit, lease_ms)
            if wait_ms is None
            else _wait_then_claim(session, keys, worker_id, limit, lease_ms, wait_ms)
        )
        claiming = asyncio.ensure_future(step)
        try:
            claim = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # Cancelling loses nothing: whatever the claim leased goes back at once.
            await asyncio.shield(
                _in_background(
                    _hand_back(session, keys, worker_id, claiming, waiting=wait_ms is not None)
                )
            )
            raise
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
            wait_ms = None
            continue
        backoff = _ERROR_BACKOFF_S[0]
        batch = claim.batch
        more_due = claim.exhausted or claim.cancelled or claim.next_delay_ms == 0
        if batch.deliveries or batch.rejected or not (wait or more_due):
            if len(batch.deliveries) + len(batch.rejected) < limit and not more_due:
                session.drained[(queue, worker_id)] = time.monotonic() + _wait_s(
                    session, claim.next_delay_ms
                )
            return batch
        wait_ms = None if more_due else claim.next_delay_ms


def _lease_args(leases: Sequence[Lease]) -> list[str | int]:
    return [part for lease in leases for part in lease]


async def extend_leases(
    session: Session, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
) -> set[Lease]:
    queues = [q for q, held in leases.items() if held]
    if not queues:
        return set()
    calls = [
        session.scripts.extend_leases.call(
            session.keys.queue(queue).all, [worker_id, lease_ms, *_lease_args(leases[queue])]
        )
        for queue in queues
    ]
    replies = await run_batch(session.client, calls)
    return {
        Lease(text(reply[i]) or "", int(reply[i + 1]))
        for reply in replies
        for i in range(0, len(reply), 2)
    }


def _settle_call(session: Session, worker_id: str, item: Settlement) -> ScriptCall:
    queue = session.keys.queue(item.queue)
    keys = [*queue.for_task(item.task_id), queue.reply(item.key)]
    delivery = "" if item.delivery is None else item.delivery
    if item.error is None:
        return session.scripts.ack_success.call(
            keys, [worker_id, item.task_id, delivery, item.result or b""]
        )
    s = session.settings
    retry = "" if item.retry_delay_ms is None else max(0, int(item.retry_delay_ms))
    return session.scripts.ack_failure.call(
        keys,
        [
            worker_id,
            item.task_id,
            delivery,
            encode_error(item.error),
            retry,
            s.dead_letter_ttl_s * 1000,
            s.dead_letter_max,
        ],
    )


async def settle(session: Session, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
    if not settlements:
        return []
    calls = [_settle_call(session, worker_id, item) for item in settlements]
    replies = await run_batch(session.client, calls, session.settle_wait)
    return [int(r) != 0 for r in replies]


async def release(session: Session, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int:
    queues = [q for q, held in leases.items() if held]
    if not queues:
        return 0
    calls = []
    for queue in queues:
        keys = session.keys.queue(queue)
        held = list(leases[queue])
        task_keys = [
            k for lease in held for k in (keys.result(lease.task_id), keys.done(lease.task_id))
        ]
        calls.append(
            session.scripts.release.call([*keys.all, *task_keys], [worker_id, *_lease_args(held)])
        )
    replies = await run_batch(session.client, calls)
    return sum(int(r) for r in replies)
