"""The loss window of asynchronous replication, and what ``wait_replicas`` changes.

The replica is frozen (SIGSTOP) and the master drops its replication link, so that the
replica cannot receive an enqueue; the master is then SIGKILLed and the replica, thawed,
promoted by the sentinels. Without ``wait_replicas``
the enqueue was acknowledged and is gone; with it, the enqueue was never acknowledged
(``NotDurableError``), so no producer believes it stored.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from rediq_core.broker import BrokerOptions
from rediq_core.testing.broker_contract import enqueue_one, make_message
from rediq_core.testing.topologies import SentinelTopology, admin, command, wait_until
from rediq_redis import RedisBroker
from rediq_redis.durability import NotDurableError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def sentinel() -> Iterator[SentinelTopology]:
    with SentinelTopology() as topology:
        yield topology


@pytest.mark.parametrize("durability", ["off", "on"])
async def test_unreplicated_enqueue_is_lost_only_without_wait(
    sentinel: SentinelTopology, rediq_namespace: str, durability: str
) -> None:
    config = {"wait_replicas": 1, "wait_timeout_ms": 300} if durability == "on" else {}
    broker = RedisBroker(BrokerOptions(url=sentinel.url(), namespace=rediq_namespace,
                                       config=config))
    master = sentinel.master()
    replica = next(s for s in sentinel.servers if s is not master)
    assert replica.process is not None
    try:
        kept = await enqueue_one(broker)

        def replicated() -> bool:
            offset = admin(master).info("replication")["master_repl_offset"]
            return bool(admin(replica).info("replication")["slave_repl_offset"] >= offset)

        wait_until(replicated, "the replica holds the first enqueue", 10)
        replica.process.send_signal(signal.SIGSTOP)
        # cut the replication link from the master's side: what follows reaches no replica
        command(admin(master), "CLIENT", "KILL", "TYPE", "replica")
        try:
            unreplicated = make_message()
            if durability == "on":
                with pytest.raises(NotDurableError, match="0 of the 1 required replica"):
                    await broker.enqueue([unreplicated])
            else:
                [outcome] = await broker.enqueue([unreplicated])
                assert outcome.accepted  # acknowledged by the master alone
            master.kill()  # SIGKILL
        finally:
            replica.process.send_signal(signal.SIGCONT)
        sentinel.wait_failover(master)
        assert await broker.get_task(kept.id, kept.queue) is not None
        assert await broker.get_task(unreplicated.id, unreplicated.queue) is None
    finally:
        await broker.close()
