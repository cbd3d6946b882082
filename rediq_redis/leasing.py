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
from typing import Any, cast

from redis.exceptions import NoScriptError, RedisError, ResponseError

from rediq_core.broker import (
    Delivery,
    Expired,
    FetchBatch,
    Lease,
    Rejected,
    Settlement,
    TaskError,
)
from rediq_core.message import MalformedMessageError, TaskMessage

from .cluster import is_cluster
from .keys import QueueKeys, new_nonce
from .layout import UNBLOCK_TTL_MS, parse_record
from .records import encode_error, text
from .scripts import ScriptCall, run_batch
from .session import Session
from .workflows import answered, deliver, split_outbox, unwrap

__all__ = ["extend_leases", "fetch", "release", "settle"]

log = logging.getLogger("rediq.broker.redis")

_background: set[asyncio.Task[Any]] = set()

#: Back-off bounds after a server-side error in the claim step (e.g. a wrong key type).
_ERROR_BACKOFF_S = (0.05, 5.0)
_ROW = 7  # fields per leased task in a claim reply
_CANCEL_TOKEN = b"1"  # what a cancelled fetch pushes onto its own list
_SETTLE_BATCH = 500
#: A worker's registration as waiting outlives its wait by this much.
_REGISTRATION_MARGIN_S = 1.0


@dataclass(frozen=True, slots=True)
class _Claim:
    next_delay_ms: int
    batch: FetchBatch
    exhausted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    #: Outbox members whose first delivery was lost (:mod:`rediq_redis.workflows`).
    stale_outbox: list[bytes] = field(default_factory=list)


def _decode(row: Sequence[Any]) -> TaskMessage:
    task_id, raw, at, length = text(row[0]) or "", row[1], int(row[2]), int(row[3])
    return TaskMessage.from_parts(task_id, raw[at : at + length], raw[at + length :])


def _handed(item: bytes) -> Delivery | tuple[Lease, str]:
    """A task an enqueue handed to this worker (``hand_off`` in the prelude):
    ``<holder>|<lease deadline>|<next delay>|<id length>|<id><record>``."""
    holder, deadline, _, length, rest = item.split(b"|", 4)
    task_id = rest[: int(length)].decode()
    record = parse_record(rest[int(length) :])
    lease = Lease(task_id, record.number("deliveries") if record else 0, holder.decode())
    if record is None:
        return lease, f"task {task_id}: its record is unreadable"
    try:
        message = TaskMessage.from_parts(task_id, record.envelope, record.payload)
    except MalformedMessageError as exc:
        return lease, str(exc)
    return Delivery(
        message,
        record.number("retried"),
        lease.delivery,
        int(deadline),
        record.number("lost"),
        lease.token,
    )


def _settle_args(item: Settlement) -> list[Any]:
    """One task's part of a ``settle`` call (``scripts/settle.lua``)."""
    delivery = "" if item.delivery is None else item.delivery
    trail = "t" if item.reported else ""  # the attempt left a trail (progress, logs)
    ran = "" if item.run_ms is None else max(0, int(item.run_ms))
    if item.error is None:
        return [item.task_id, delivery, "s" + trail, item.result or b"", "", item.key, ran]
    if item.retry_delay_ms is None:
        error = encode_error(item.error)
        return [item.task_id, delivery, "f" + trail, error, "", item.key, ran]
    delay = max(0, int(item.retry_delay_ms))
    return [item.task_id, delivery, "r" + trail, encode_error(item.error), delay, item.key, ran]


def _settle_call(
    session: Session, keys: QueueKeys, worker_id: str, items: Sequence[Settlement]
) -> ScriptCall:
    """One ``settle`` call for ``items`` (all of one queue); ``worker_id`` '' finishes
    expired leases."""
    s = session.settings
    return session.scripts.settle.call(
        [*keys.all, *(keys.result(item.task_id) for item in items)],
        [
            worker_id,
            s.dead_letter_ttl_s * 1000,
            s.dead_letter_max,
            *(part for item in items for part in _settle_args(item)),
        ],
        items,
    )


def _dead_letter(task_id: str, queue: str, delivery: int | None, error: TaskError) -> Settlement:
    return Settlement(task_id, queue, error=error, delivery=delivery)


def _claim_args(
    session: Session,
    keys: QueueKeys,
    worker_id: str,
    limit: int,
    lease_ms: int,
) -> tuple[list[str], list[Any]]:
    s = session.settings
    return (
        [*keys.all, keys.unblock(worker_id)],
        [
            worker_id,
            limit,
            lease_ms,
            s.max_deliveries,
            s.dead_letter_ttl_s * 1000,
            s.dead_letter_max,
            s.claim_bound,
            new_nonce(),
        ],
    )


async def _claim(
    session: Session,
    keys: QueueKeys,
    worker_id: str,
    limit: int,
    lease_ms: int,
) -> _Claim:
    """One claim step, and the finishing calls it asks for (in one round trip)."""
    claim_keys, args = _claim_args(session, keys, worker_id, limit, lease_ms)
    reply = await session.scripts.claim(session.blocking, claim_keys, args)
    return await _claimed(session, keys, worker_id, lease_ms, reply)


async def _claimed(
    session: Session, keys: QueueKeys, worker_id: str, lease_ms: int, reply: Any
) -> _Claim:
    """A claim's reply, decoded; then its finishing calls."""
    deliveries: list[Delivery] = []
    rejects: list[tuple[Lease, str]] = []
    now, holder, rows = int(reply[0]), text(reply[2]) or "", reply[3]
    deadline = now + lease_ms
    for i in range(0, len(rows), _ROW):
        row = rows[i : i + _ROW]
        lease = Lease(text(row[0]) or "", int(row[5]), holder)
        try:
            message = _decode(row)
        except MalformedMessageError as exc:
            rejects.append((lease, str(exc)))
            continue
        deliveries.append(
            Delivery(message, int(row[4]), lease.delivery, deadline, int(row[6]), holder)
        )
    for item in reply[7]:
        handed = _handed(item)
        if isinstance(handed, Delivery):
            deliveries.append(handed)
        else:
            rejects.append(handed)
    broken = reply[6]
    rejected = [Rejected(lease.task_id, why) for lease, why in rejects]
    rejected += [
        Rejected(text(broken[i]) or "", text(broken[i + 1]) or "") for i in range(0, len(broken), 2)
    ]
    expired = reply[9] if len(reply) > 9 else []  # none on a re-send
    claim = _Claim(
        next_delay_ms=int(reply[1]),
        batch=FetchBatch(
            deliveries,
            rejected,
            [
                Expired(
                    text(expired[i]) or "", text(expired[i + 1]) or "", text(expired[i + 2]) or ""
                )
                for i in range(0, len(expired), 3)
            ],
        ),
        exhausted=[text(i) or "" for i in reply[4]],
        cancelled=[text(i) or "" for i in reply[5]],
        stale_outbox=list(reply[8]) if len(reply) > 8 else [],  # none on a re-send
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
    queue = keys.queue
    calls = []
    if rejects:
        calls.append(
            _settle_call(
                session,
                keys,
                worker_id,
                [
                    _dead_letter(lease.task_id, queue, lease.delivery, _malformed(why))
                    for lease, why in rejects
                ],
            )
        )
    if claim.exhausted:
        lost = TaskError("LeaseExpiredError", reason)
        calls.append(
            _settle_call(
                session, keys, "", [_dead_letter(i, queue, None, lost) for i in claim.exhausted]
            )
        )
    calls.extend(
        session.scripts.cancel.call(
            keys.for_task(task_id), [task_id, session.keys.cancel_channel, new_nonce()]
        )
        for task_id in claim.cancelled
    )
    outbox = list(claim.stale_outbox)
    try:
        replies = await run_batch(session.blocking, calls) if calls else []
    except RedisError as exc:
        log.error(
            "queue %r: could not finish %d expired or unusable task(s) (%s); a later"
            " fetch finishes them",
            keys.queue,
            len(calls),
            exc,
        )
    else:
        for call, reply in zip(calls, replies, strict=True):
            outbox += _outbox_of(call, reply)
    if outbox:
        await deliver(session, queue, outbox)


def _outbox_of(call: ScriptCall, reply: Any) -> list[bytes]:
    """The outbox members a settle or cancel call of :func:`_finish` answered with."""
    if call.items:  # a settle call
        return split_outbox(reply, len(call.items))[1]
    return unwrap(reply)[1]


def _malformed(why: str) -> TaskError:
    return TaskError("MalformedMessageError", why)


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


async def _wait(
    session: Session,
    keys: QueueKeys,
    worker_id: str,
    limit: int,
    lease_ms: int,
    next_delay_ms: int,
) -> _Claim:
    """Block on this worker's own list and the wake key until a task is handed over, a
    token arrives or the next deadline passes; then (but for a handed task) claim.

    A task an enqueue handed to this waiting worker (the claim before registered it)
    arrives as the ``BLPOP``'s own answer, already leased: the pickup takes no claim.

    Redis ends a blocking command's timeout on its timer tick (1/hz s, 100 ms by default),
    so the server-side wait stops one tick short of the deadline; the claim then reports
    the remaining delay and the last tick is an asyncio timer: the wait is never late and
    never cancels the command (which would close the connection). A cancellation from
    outside (shutdown) unblocks the wait through this worker's own list
    (:func:`_hand_back`).
    """
    # A registration lasts about one lease (at least a second): the wait ends by then and
    # the worker registers again (one claim and one registration per lease while idle),
    # so the registration of a worker that died waiting lapses within a lease.
    timeout = min(_wait_s(session, next_delay_ms), max(lease_ms / 1000, 1.0))
    server_part = timeout - session.timer_tick_s
    if server_part > 0.001:
        popped = await _register_and_block(session, keys, worker_id, lease_ms, server_part)
        if popped is not None and popped[0] != _wake_key(keys):  # this worker's own list
            if popped[1] == _CANCEL_TOKEN:
                return _Claim(-1, FetchBatch([], []))
            item = cast(bytes, popped[1])
            next_delay_ms = int(item.split(b"|", 3)[2])  # the queue had no other ready task
            handed = _handed(item)
            if isinstance(handed, Delivery):
                return _Claim(next_delay_ms, FetchBatch([handed], []))
            lease, why = handed
            claim = _Claim(next_delay_ms, FetchBatch([], [Rejected(lease.task_id, why)]))
            await _finish(session, keys, worker_id, claim, [handed])
            return claim
    else:
        await asyncio.sleep(timeout)  # the last timer tick before a known deadline
    return await _claim(session, keys, worker_id, limit, lease_ms)


async def _register_and_block(
    session: Session, keys: QueueKeys, worker_id: str, lease_ms: int, timeout_s: float
) -> Any:
    """Register as waiting (``wait.lua``), then ``BLPOP`` this worker's list and the wake
    key: one pipeline. On a Cluster (which splits pipelines by node), and for the first
    wait of a session (the script may not be loaded yet: a registration answered NOSCRIPT
    inside the pipeline would leave the whole wait unregistered), two steps."""
    valid_ms = int((timeout_s + _REGISTRATION_MARGIN_S) * 1000)
    unblock = keys.unblock(worker_id)
    blocked_on = [unblock, keys.key("wake")]
    register = session.scripts.wait
    register_keys = [*keys.all, unblock]
    args = [worker_id, lease_ms, valid_ms]
    if is_cluster(session.blocking) or register.name not in session.ran:
        await register(session.blocking, register_keys, args)
        session.ran.add(register.name)
        return await session.blocking.blpop(blocked_on, timeout=timeout_s)
    async with session.blocking.pipeline(transaction=False) as pipe:
        pipe.execute_command("EVALSHA", register.sha, len(register_keys), *register_keys, *args)
        pipe.blpop(blocked_on, timeout=timeout_s)
        registered, popped = await pipe.execute(raise_on_error=False)
    if isinstance(registered, NoScriptError):
        # not registered this time (the server lost its scripts): the wait itself went
        # on; the next one registers
        await register.load(session.blocking, keys.all[0])
        registered = 0
    for reply in (registered, popped):
        if isinstance(reply, Exception):
            raise reply
    return popped


def _wake_key(keys: QueueKeys) -> bytes:
    return keys.key("wake").encode()


async def _hand_back(
    session: Session,
    keys: QueueKeys,
    worker_id: str,
    claiming: asyncio.Future[_Claim],
    waiting: bool,
) -> None:
    """A fetch was cancelled while its claim or wait was in flight: await it and release
    what it leased (it may have run on the server already). A wait is unblocked first,
    through this worker's own list. Then a claim of nothing ends the worker's registration
    as waiting and takes back what an enqueue handed to it meanwhile, released too."""
    unblock = keys.unblock(worker_id)
    with contextlib.suppress(Exception):
        if waiting and not claiming.done():
            async with session.client.pipeline(transaction=True) as pipe:
                pipe.rpush(unblock, _CANCEL_TOKEN)
                pipe.pexpire(unblock, UNBLOCK_TTL_MS)  # in case the DEL below fails
                await pipe.execute()
        try:
            claim = await claiming
            final = await _claim(session, keys, worker_id, 0, 1)
        finally:
            if waiting:
                await session.client.delete(unblock)
        deliveries = [*claim.batch.deliveries, *final.batch.deliveries]
        if deliveries:
            await release(session, worker_id, {keys.queue: [d.lease for d in deliveries]})


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
            else _wait(session, keys, worker_id, limit, lease_ms, wait_ms)
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
        if batch.deliveries or batch.rejected or batch.expired or not (wait or more_due):
            # a handed task came from a queue without other ready tasks: drained too, and
            # the next fetch registers and waits at once
            drained = len(batch.deliveries) + len(batch.rejected) < limit and not more_due
            if drained:
                session.drained[(queue, worker_id)] = time.monotonic() + _wait_s(
                    session, claim.next_delay_ms
                )
            return batch
        wait_ms = None if more_due else claim.next_delay_ms


def _lease_args(leases: Sequence[Lease]) -> list[str | int]:
    return [part for lease in leases for part in (lease.task_id, lease.delivery)]


async def extend_leases(
    session: Session, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
) -> set[Lease]:
    """One ``renew`` call per queue: it moves the deadline of the worker's holder there,
    so its cost does not depend on how many leases the worker holds. A lease whose token
    names another (an expired) holder is lost; leases without a token (tools, tests) are
    checked one by one."""
    queues = [q for q, held in leases.items() if held]
    if not queues:
        return set()
    calls = [
        session.scripts.renew.call(
            session.keys.queue(queue).all,
            [worker_id, lease_ms, *_lease_args([x for x in leases[queue] if not x.token])],
        )
        for queue in queues
    ]
    replies = await run_batch(session.client, calls)
    stop: set[Lease] = set()
    for queue, (holder, cancelled, lost) in zip(queues, replies, strict=True):
        alive = text(holder) or ""
        flagged = {text(i) for i in cancelled}
        unheld = {(text(lost[i]), int(lost[i + 1])) for i in range(0, len(lost), 2)}
        for lease in leases[queue]:
            if lease.token:
                if lease.token != alive or lease.task_id in flagged:
                    stop.add(lease)
            elif (lease.task_id, lease.delivery) in unheld or lease.task_id in flagged:
                stop.add(lease)
    return stop


async def settle(session: Session, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
    """One ``settle`` call per queue (and batch of 500) for all the settlements."""
    if not settlements:
        return []
    by_queue: dict[str, list[Settlement]] = {}
    for item in settlements:
        by_queue.setdefault(item.queue, []).append(item)
    calls = [
        _settle_call(session, session.keys.queue(queue), worker_id, items[i : i + _SETTLE_BATCH])
        for queue, items in by_queue.items()
        for i in range(0, len(items), _SETTLE_BATCH)
    ]
    replies = await run_batch(session.client, calls, session.settle_wait, session.line)
    answers: dict[int, bool] = {}
    for call, reply in zip(calls, replies, strict=True):
        settled, outbox = split_outbox(reply, len(call.items))
        for item, answer in zip(call.items, settled, strict=True):
            answers[id(item)] = int(answer) != 0
        if outbox:
            await deliver(session, call.items[0].queue, outbox)
    return [answers[id(item)] for item in settlements]


async def release(session: Session, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int:
    queues = [q for q, held in leases.items() if held]
    if not queues:
        return 0
    calls = []
    for queue in queues:
        keys = session.keys.queue(queue)
        held = list(leases[queue])
        calls.append(
            session.scripts.release.call(
                [*keys.all, *(keys.result(lease.task_id) for lease in held)],
                [worker_id, *_lease_args(held)],
            )
        )
    replies = await run_batch(session.client, calls)
    return sum([int(await answered(session, q, r)) for q, r in zip(queues, replies, strict=True)])
