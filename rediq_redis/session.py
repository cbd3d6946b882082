"""What every broker operation needs: the two clients, the scripts and the key layout."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from rediq_core import defaults

from .keys import NamespaceKeys
from .scripts import Scripts

__all__ = ["BrokerSettings", "Session"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSettings:
    """Protocol bounds (documented in docs/broker.md)."""

    #: A blocked fetch re-checks at least this often, in case a wake token was lost.
    wake_safety_cap_s: float = 30.0
    #: Deliveries (leases) after which an expiring lease dead-letters the task.
    max_deliveries: int = defaults.MAX_DELIVERIES
    dead_letter_ttl_s: int = defaults.DEAD_LETTER_TTL_S
    dead_letter_max: int = defaults.DEAD_LETTER_MAX
    #: Scheduled tasks promoted / expired leases reclaimed per claim step, at most.
    claim_bound: int = 1000
    #: Tasks removed per purge script call.
    purge_batch: int = 1000


@dataclass(frozen=True, slots=True)
class Session:
    client: Redis
    blocking: Redis
    scripts: Scripts
    keys: NamespaceKeys
    settings: BrokerSettings
