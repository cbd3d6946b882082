"""``memory://``: an in-process broker plugin for unit tests and notebooks.

Registered through the ``rediq_register_brokers`` hook (entry point ``memory``) exactly
like a third-party broker. Every broker of one process with the same URL and namespace
shares one store, so an app, a worker running in the same process (``rediq.testing.
run_worker``) and its lease-keeper thread see the same queues. Cron schedules are not
supported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .broker import MemoryBroker
    from .store import drop_stores

__all__ = ["MemoryBroker", "drop_stores"]


def __getattr__(name: str) -> Any:
    """Import the broker on first use: every process loads the plugin (entry point
    ``rediq_memory.plugin``), few use ``memory://``."""
    if name == "MemoryBroker":
        from .broker import MemoryBroker

        return MemoryBroker
    if name == "drop_stores":
        from .store import drop_stores

        return drop_stores
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
