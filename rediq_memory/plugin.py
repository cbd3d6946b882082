"""Entry point ``memory``: registers the in-process broker for ``memory://`` URLs."""

from __future__ import annotations

from rediq_core.broker import Broker, BrokerOptions
from rediq_core.hookspecs import RegisterBroker
from rediq_core.plugins import hookimpl

__all__ = ["rediq_register_brokers"]


def _create(options: BrokerOptions) -> Broker:
    from .broker import MemoryBroker

    return MemoryBroker(options)


@hookimpl(trylast=True)
def rediq_register_brokers(register: RegisterBroker) -> None:
    register("memory", _create)
