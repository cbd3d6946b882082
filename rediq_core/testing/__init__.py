"""Broker-neutral testing helpers for rediq and for projects that use it.

- :func:`run_worker` runs a worker in the test's event loop (an async context manager);
  :func:`using_broker` points an app at a test broker (``memory://``, or a test server).
- The opt-in pytest plugin (``-p rediq.testing``, :mod:`rediq_core.testing.pytest_plugin`)
  provides ``rediq_namespace`` and the fixtures broker plugins register through
  ``rediq_register_pytest_plugins``.
- ``rediq_core.testing.broker_contract``: the contract suite every broker runs.

Throwaway Redis servers and topologies (redis-server, Cluster, Sentinel, TLS) belong to
the Redis plugin: ``rediq_redis.testing``. Production code never imports this package.
"""

from __future__ import annotations

from .inprocess import run_worker, using_broker

__all__ = ["run_worker", "using_broker"]
