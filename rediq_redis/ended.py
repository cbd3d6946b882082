"""Ended tasks of a group: found by their result hashes, since an ended task leaves the
group index (which covers pending, scheduled, active and dead tasks).

One SCAN over the namespace's result keys (or one queue's) serves every queue asked: a
walk of the keyspace, as fits an operator's command (``rediq delete --group``), never a
worker's path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .records import envelope_fields, text
from .session import Session

__all__ = ["ended_group_ids"]

#: Result hashes read per pipeline.
_PAGE = 500
_RESULT = "}:result:"


def _glob_literal(literal: str) -> str:
    """A Redis glob pattern (SCAN MATCH) that matches ``literal`` only."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", literal)


def _tags(envelope: bytes | None) -> list[object]:
    """The group tags in a result hash's copy of the task's envelope."""
    tags = envelope_fields(envelope).get("groups")
    return tags if isinstance(tags, list) else []


async def _tagged(
    session: Session, result_keys: list[str], prefixes: dict[str, str], group: str
) -> list[tuple[str, str]]:
    """(queue, task id) of those result hashes whose envelope's ``groups`` hold
    ``group``; keys of queues not in ``prefixes`` (result key prefix -> queue) are left
    out."""
    if not result_keys:
        return []
    async with session.client.pipeline(transaction=False) as pipe:
        for key in result_keys:
            pipe.hget(key, "envelope")
        replies = await pipe.execute()
    found = []
    for key, raw in zip(result_keys, replies, strict=True):
        prefix = key[: key.find(_RESULT) + len(_RESULT)]
        if prefix not in prefixes:  # a queue name holding "}:result:"
            prefix = next((p for p in prefixes if key.startswith(p)), "")
        if prefix in prefixes and group in _tags(raw):
            found.append((prefixes[prefix], key[len(prefix) :]))
    return found


async def ended_group_ids(
    session: Session, queues: Sequence[str], group: str
) -> dict[str, list[str]]:
    """The ended tasks of ``queues`` tagged ``group`` whose result is still kept, by queue:
    one SCAN of the queue's result keys, or of the namespace's for several queues."""
    prefixes = {session.keys.queue(q).result(""): q for q in queues}
    if len(prefixes) == 1:
        [pattern] = [_glob_literal(p) + "*" for p in prefixes]
    else:
        namespace = _glob_literal(session.keys.namespace)
        pattern = "{" + namespace + ":*" + _RESULT + "*"
    found: dict[str, list[str]] = {}
    page: list[str] = []

    async def sort_out() -> None:
        for queue, task_id in await _tagged(session, page, prefixes, group):
            found.setdefault(queue, []).append(task_id)
        page.clear()

    async for key in session.client.scan_iter(match=pattern, count=1000):
        page.append(text(key) or "")
        if len(page) == _PAGE:
            await sort_out()
    await sort_out()
    return found
