"""The loss window of asynchronous replication, and what ``wait_replicas`` changes.

The replica is frozen (SIGSTOP) and the master drops its replication link, so that the
replica cannot receive an enqueue; the master is then SIGKILLed and the replica, thawed,
promoted (by the sentinels, or by the cluster's election). Without ``wait_replicas`` the
enqueue was acknowledged and is gone; with it, the enqueue was never acknowledged
(``NotDurableError``), so no producer believes it stored.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest
from redis.crc import key_slot

from rediq_core.broker import BrokerOptions, TaskRecord
from rediq_core.errors import BrokerUnavailableError
from rediq_core.testing.broker_contract import QUEUE, enqueue_one, make_message
from rediq_redis import RedisBroker
from rediq_redis.durability import NotDurableError
from rediq_redis.testing import RedisServer
from rediq_redis.testing.topologies import (
    ClusterTopology,
    SentinelTopology,
    admin,
    command,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

#: (URL, master, replica, wait until the replica took over) of a fresh topology
Setup = tuple[str, RedisServer, RedisServer, Callable[[], None]]


def _sentinel(topology: SentinelTopology, namespace: str) -> Setup:
    master = topology.master()
    replica = next(s for s in topology.servers if s is not master)

    def promoted() -> None:
        topology.wait_failover(master)

    return topology.url(), master, replica, promoted


def _cluster(topology: ClusterTopology, namespace: str) -> Setup:
    master = topology.master_of_slot(key_slot(f"{{{namespace}:{QUEUE}}}".encode()))
    replica = topology.replica_of(master)
    return topology.url(), master, replica, lambda: topology.wait_promoted(replica)


@pytest.mark.parametrize("durability", ["off", "on"])
@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
async def test_unreplicated_enqueue_is_lost_only_without_wait(
    rediq_namespace: str, durability: str, kind: str
) -> None:
    if kind == "sentinel":
        with SentinelTopology() as sentinel:
            await _lose_one(*_sentinel(sentinel, rediq_namespace), rediq_namespace, durability)
    else:
        with ClusterTopology() as cluster:
            await _lose_one(*_cluster(cluster, rediq_namespace), rediq_namespace, durability)


async def _lose_one(
    url: str,
    master: RedisServer,
    replica: RedisServer,
    promoted: Callable[[], None],
    namespace: str,
    durability: str,
) -> None:
    config = {"wait_replicas": 1, "wait_timeout_ms": 300} if durability == "on" else {}
    broker = RedisBroker(BrokerOptions(url=url, namespace=namespace, config=config))
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
        promoted()
        assert await _read_after_failover(broker, kept.id) is not None
        assert await _read_after_failover(broker, unreplicated.id) is None
    finally:
        await broker.close()


async def _read_after_failover(broker: RedisBroker, task_id: str) -> TaskRecord | None:
    """The task's record as the new master holds it. A read pipeline is not re-sent
    across a failover (a command is): the client's first read after the promotion may
    meet the dead master before it refreshes the slot map; read again (bounded)."""
    for _ in range(100):
        try:
            return await broker.get_task(task_id, QUEUE)
        except BrokerUnavailableError:
            await asyncio.sleep(0.1)  # re-check interval of a bounded wait
    return await broker.get_task(task_id, QUEUE)
