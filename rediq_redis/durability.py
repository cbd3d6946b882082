"""Optional durability of enqueues and settlements: ``WAIT`` for replicas.

Redis replicates asynchronously: a write the master acknowledged can be lost if the
master dies before a replica received it and that replica is promoted. With
``redis_config={"wait_replicas": N}`` a batch of enqueues (or settlements) ends with
``WAIT N wait_timeout_ms`` on the connection that sent it, so its answer means "held by
the master and N replicas" (docs/broker.md, "Durability across a failover").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rediq_core import defaults
from rediq_core.errors import BrokerError

__all__ = ["NotDurableError", "WaitReplicas", "check_acknowledged", "durability"]

log = logging.getLogger("rediq.broker.redis")


@dataclass(frozen=True, slots=True)
class WaitReplicas:
    """After a batch's script calls, ``WAIT replicas timeout_ms`` on the same connection
    (on a cluster: on each node the batch wrote to). ``strict``: fewer acknowledgements
    raise :class:`NotDurableError`; otherwise they are logged as a warning."""

    replicas: int
    timeout_ms: int
    strict: bool


class NotDurableError(BrokerError):
    """The batch ran on the master, but fewer replicas than required acknowledged it in
    time: a failover now could lose it."""


def durability(config: Mapping[str, Any]) -> tuple[WaitReplicas | None, WaitReplicas | None]:
    """(for enqueues, for settlements) from ``redis_config``; ``None`` without
    ``wait_replicas``. A short enqueue raises (the producer must know); a short settlement
    is logged (its outcome is stored on the master; at worst the task runs again)."""
    replicas = int(config.get("wait_replicas", defaults.WAIT_REPLICAS))
    if replicas <= 0:
        return None, None
    timeout_ms = int(config.get("wait_timeout_ms", defaults.WAIT_TIMEOUT_MS))
    return (
        WaitReplicas(replicas, timeout_ms, strict=True),
        WaitReplicas(replicas, timeout_ms, strict=False),
    )


def check_acknowledged(wait: WaitReplicas, acks: Sequence[Any], calls: int) -> None:
    """Compare ``WAIT`` answers (one per node written to) with what ``wait`` requires."""
    counts = [-1 if isinstance(a, Exception) else int(a) for a in acks]
    if not counts or min(counts) >= wait.replicas:
        return
    message = (
        f"{calls} call(s) ran on the master but only {max(min(counts), 0)} of the"
        f" {wait.replicas} required replica(s) acknowledged them within"
        f" {wait.timeout_ms} ms (wait_replicas): a failover now could lose them"
    )
    if wait.strict:
        raise NotDurableError(message)
    log.warning(message)
