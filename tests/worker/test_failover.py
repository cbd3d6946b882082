"""Failover: a worker rides out the SIGKILL of a master (Redis Cluster and Sentinel), by
itself, and every task finishes. Measured and printed (run with ``-s``): stall, lost and
duplicate executions, with and without the ``wait_replicas`` durability setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from rediq_core.shards import shard_names
from rediq_redis.keys import QueueKeys
from rediq_redis.testing import RedisServer
from rediq_redis.testing.topologies import ClusterTopology, SentinelTopology

from .conftest import Harness
from .failover import drain_through_failover

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DURABILITY = {"off": {}, "on": {"wait_replicas": 1, "wait_timeout_ms": 1000}}


@pytest.fixture
def cluster() -> Iterator[ClusterTopology]:
    with ClusterTopology() as topology:
        yield topology


@pytest.fixture
def sentinel() -> Iterator[SentinelTopology]:
    with SentinelTopology() as topology:
        yield topology


def _report(record_property: Any, name: str, report: Any, durability: str) -> None:
    """Record the run's figures, then check them: every acknowledged task ran (none lost
    with durability on), and only tasks in flight at the kill ran twice."""
    print(f"\n[measure] {name}: {report.line()}")
    record_property(name, report.line())
    assert report.acknowledged + report.unconfirmed == 5_000
    if durability == "on":
        assert report.lost == 0, report.line()
    assert report.executed + report.lost == 5_000
    # at most the tasks in flight at the kill (20 running + 50 prefetched, their claims or
    # settlements not yet replicated) run twice
    assert report.duplicates <= 250, report.line()


async def _kill_master_of(
    cluster: ClusterTopology,
    harness: Harness,
    queues: list[str],
    durability: str,
    **drain: Any,
) -> Any:
    """Drain ``queues`` (two on each master) through the SIGKILL of the master of the
    first; return the report."""
    masters = {
        q: cluster.master_of_slot(key_slot(QueueKeys(harness.namespace, q).tag.encode()))
        for q in queues
    }
    victim = masters[queues[0]]
    replica = cluster.replica_of(victim)
    on_victim = {q for q, master in masters.items() if master is victim}
    assert len(on_victim) == 2 and len({m.port for m in masters.values()}) == 3

    def kill() -> RedisServer:
        victim.kill()  # SIGKILL
        return victim

    def recover(server: RedisServer) -> None:
        server.start()  # comes back with its nodes.conf, as a replica of the new master
        cluster.wait_healthy()

    try:
        return await drain_through_failover(
            harness,
            queues=queues,
            config=DURABILITY[durability],
            kill=kill,
            promoted=lambda _: cluster.wait_promoted(replica),
            recover=recover,
            killed_queues=on_victim,
            **drain,
        )
    finally:
        await harness.close()


@pytest.mark.parametrize("durability", DURABILITY)
async def test_cluster_master_killed_mid_run(
    cluster: ClusterTopology,
    tmp_path: Path,
    rediq_namespace: str,
    durability: str,
    record_property: Any,
) -> None:
    harness = Harness(tmp_path, cluster.url(), rediq_namespace)
    queues = cluster.spread_queues(rediq_namespace, 6)
    report = await _kill_master_of(cluster, harness, queues, durability)
    _report(record_property, f"cluster failover, durability {durability}", report, durability)


async def test_cluster_shard_master_killed_mid_run(
    cluster: ClusterTopology, tmp_path: Path, rediq_namespace: str, record_property: Any
) -> None:
    """A sharded queue (6 shards, two on each master) through the SIGKILL of the master
    of two of its shards: the worker, consuming the queue by its name, loses nothing."""
    harness = Harness(tmp_path, cluster.url(), rediq_namespace)
    shards = list(shard_names("work", 6))
    report = await _kill_master_of(
        cluster, harness, shards, "on", consume=["work"], env={"REDIQ_QUEUE_SHARDS": "work=6"}
    )
    _report(record_property, "cluster failover of a shard's master", report, "on")


@pytest.mark.parametrize("durability", DURABILITY)
async def test_sentinel_master_killed_mid_run(
    sentinel: SentinelTopology,
    tmp_path: Path,
    rediq_namespace: str,
    durability: str,
    record_property: Any,
) -> None:
    queues = [f"q{i}" for i in range(6)]
    victim = sentinel.master()

    def kill() -> RedisServer:
        victim.kill()  # SIGKILL
        return victim

    def recover(server: RedisServer) -> None:
        server.start()  # the sentinels turn it into a replica of the new master
        sentinel.wait_replica(server)

    harness = Harness(tmp_path, sentinel.url(), rediq_namespace)
    try:
        report = await drain_through_failover(
            harness,
            queues=queues,
            config=DURABILITY[durability],
            kill=kill,
            promoted=lambda old: sentinel.wait_failover(old),
            recover=recover,
            killed_queues=set(queues),
        )
    finally:
        await harness.close()
    _report(record_property, f"sentinel failover, durability {durability}", report, durability)
