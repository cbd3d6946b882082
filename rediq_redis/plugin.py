"""Entry point ``redis``: registers the Redis broker for its URL schemes (one server,
TLS, unix socket, Sentinel, Cluster: ``rediq_redis.topology.SCHEMES``), and the pytest
fixtures of its throwaway servers for ``pytest -p rediq.testing``."""

from __future__ import annotations

from rediq_core.broker import Broker, BrokerOptions
from rediq_core.hookspecs import RegisterBroker, RegisterPytestPlugin
from rediq_core.plugins import hookimpl

__all__ = ["rediq_register_brokers", "rediq_register_pytest_plugins"]


def _create(options: BrokerOptions) -> Broker:
    from .broker import RedisBroker

    return RedisBroker(options)


@hookimpl(trylast=True)
def rediq_register_brokers(register: RegisterBroker) -> None:
    from .topology import SCHEMES

    for scheme in SCHEMES:
        register(scheme, _create)


@hookimpl(trylast=True)
def rediq_register_pytest_plugins(register: RegisterPytestPlugin) -> None:
    # a name: the core's pytest plugin imports it, so production code never imports testing
    register("rediq_redis.testing.fixtures")
