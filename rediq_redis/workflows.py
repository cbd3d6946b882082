"""Workflows on Redis: the workflow's record, and the delivery of a step's effects on the
steps of other queues (docs/broker.md, "Workflows").

A step's end releases or ends the steps that wait for it in the same script, when they
are in its queue (one slot). A step of another queue may live on another Redis Cluster
node, so the script writes the effect into its own queue's ``outbox`` instead, atomically
with the step's end, and answers with what it wrote; the broker then delivers it
(``deliver.lua`` on the other queue, which may write effects of its own: they are
delivered in turn) and removes it from the outbox. If the process dies in between, the
next claim of the queue finds the member older than ``OUTBOX_GRACE_MS`` and delivers it
again: a delivery counts once, however often it is made.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from rediq_core import defaults
from rediq_core.workflow_records import WorkflowRecord

from .layout import OUTBOX_GRACE_MS
from .records import text
from .scripts import run_batch
from .session import Session

__all__ = ["answered", "deliver", "get_workflow", "split_outbox", "store_workflow", "unwrap"]

log = logging.getLogger("rediq.redis")


async def store_workflow(session: Session, workflow: WorkflowRecord) -> None:
    ttl = workflow.ttl_s or defaults.DEFAULT_RESULT_TTL_S
    key = session.keys.workflow(workflow.id)
    await session.client.set(key, workflow.to_json(), ex=ttl, nx=True)


async def get_workflow(session: Session, workflow_id: str) -> WorkflowRecord | None:
    raw = await session.client.get(session.keys.workflow(workflow_id))
    return None if raw is None else WorkflowRecord.from_json(workflow_id, raw)


def split_outbox(reply: Any, answers: int) -> tuple[list[Any], list[bytes]]:
    """A batch script's reply without the outbox members it may end with: ``answers``
    answers, then (if any) one list of members."""
    items = list(reply)
    if len(items) > answers:
        return items[:answers], list(items[answers])
    return items, []


def unwrap(reply: Any) -> tuple[Any, list[bytes]]:
    """A one-answer script's reply (cancel, delete, purge, release): the answer alone, or
    ``[answer, outbox members]``; the answer and the members."""
    if isinstance(reply, list):
        return reply[0], list(reply[1])
    return reply, []


async def answered(session: Session, queue: str, reply: Any) -> Any:
    """The answer of a one-answer script of ``queue``, once the outbox members it carries
    are delivered."""
    answer, outbox = unwrap(reply)
    if outbox:
        await deliver(session, queue, outbox)
    return answer


async def deliver(session: Session, queue: str, members: Sequence[bytes]) -> None:
    """Deliver outbox members of ``queue``, then what their delivery wrote, until none is
    left; each delivered member leaves its outbox. A failure is logged: the members stay
    in the outbox, and a later claim of their queue delivers them."""
    pending: list[tuple[str, list[bytes]]] = [(queue, list(members))]
    try:
        while pending:
            targets: dict[str, list[bytes]] = {}
            for _, items in pending:
                for member in items:
                    target = _target(member)
                    if target is not None:
                        targets.setdefault(target, []).append(member)
            calls = [
                session.scripts.deliver.call(list(session.keys.queue(target).all), items)
                for target, items in targets.items()
            ]
            replies = await run_batch(session.client, calls) if calls else []
            async with session.client.pipeline(transaction=False) as pipe:
                for source, items in pending:
                    pipe.zrem(session.keys.queue(source).key("outbox"), *items)
                await pipe.execute()
            pending = [
                (target, list(reply))
                for target, reply in zip(targets, replies, strict=True)
                if reply
            ]
    except RedisError as exc:
        log.warning(
            "queue %r: workflow steps of other queues not told yet (%s); a claim of the"
            " queue tells them within %d s",
            queue,
            exc,
            OUTBOX_GRACE_MS // 1000,
        )


def _target(member: bytes) -> str | None:
    try:
        return str(json.loads(member)["q"])
    except (ValueError, KeyError, TypeError):
        log.error("dropping an unreadable outbox member %r", text(member))
        return None
