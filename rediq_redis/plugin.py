"""Entry point ``redis``: registers the Redis broker for its URL schemes."""

from __future__ import annotations

from rediq_core.broker import Broker, BrokerOptions
from rediq_core.hookspecs import RegisterBroker
from rediq_core.plugins import hookimpl

__all__ = ["rediq_register_brokers"]


def _create(options: BrokerOptions) -> Broker:
    from .broker import RedisBroker

    return RedisBroker(options)


@hookimpl(trylast=True)
def rediq_register_brokers(register: RegisterBroker) -> None:
    for scheme in ("redis", "rediss", "unix"):
        register(scheme, _create)
