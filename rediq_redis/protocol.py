"""The storage protocol's version: a client refuses data written by another version.

Protocol 1 kept a task's fields in ten per-queue hashes and a reply key per call; protocol
2 (``layout.PROTOCOL``) keeps one record per task. The namespace key ``{NS}:protocol``
holds the version of the data under it; the first client of an empty namespace writes
it. A namespace without it whose queues hold protocol 1 data is refused too.
"""

from __future__ import annotations

from redis.asyncio import Redis

from rediq_core.errors import ProtocolMismatchError

from .keys import NamespaceKeys
from .layout import PROTOCOL
from .records import text

__all__ = ["check_protocol"]

#: A key every queue of protocol 1 had while it held a task.
_V1_KEY = "state"


async def check_protocol(client: Redis, keys: NamespaceKeys) -> None:
    """Raise :class:`ProtocolMismatchError` unless the namespace holds protocol
    :data:`PROTOCOL` data (or none yet: then mark it as such)."""
    stored = text(await client.get(keys.protocol))
    if stored is None:
        queues = sorted(text(q) or "" for q in await client.smembers(keys.queues))
        for queue in queues:
            if await client.exists(keys.queue(queue).key(_V1_KEY)):
                raise _mismatch(keys.namespace, "1", f"queue {queue!r} holds tasks of it")
        await client.set(keys.protocol, PROTOCOL, nx=True)
        stored = text(await client.get(keys.protocol)) or str(PROTOCOL)
    if stored != str(PROTOCOL):
        raise _mismatch(keys.namespace, stored, "")


def _mismatch(namespace: str, found: str, detail: str) -> ProtocolMismatchError:
    why = f" ({detail})" if detail else ""
    return ProtocolMismatchError(
        f"namespace {namespace!r} holds data of rediq storage protocol {found}{why}; this"
        f" rediq speaks protocol {PROTOCOL} and does not touch it. Drain it with workers of"
        f" the version that wrote it, or use another namespace (docs/broker.md,"
        f' "Protocol versions").'
    )
