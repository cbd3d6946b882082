"""rediq's Redis broker plugin (entry point ``redis``)."""

from __future__ import annotations

from .broker import RedisBroker
from .keys import NamespaceKeys, QueueKeys
from .session import BrokerSettings

__all__ = ["BrokerSettings", "NamespaceKeys", "QueueKeys", "RedisBroker"]
