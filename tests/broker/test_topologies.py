"""The broker contract on real topologies: a 3-master Redis Cluster (with replicas),
Sentinel (master, replica, three sentinels) and a TLS-only server with client
certificates. The topologies are session-wide (``rediq_core.testing.pytest_plugin``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from rediq_core.broker import BrokerOptions
from rediq_core.testing.broker_contract import BrokerContract, fetch, make_message
from rediq_redis import RedisBroker

TOPOLOGIES = ("cluster", "sentinel", "tls")


def topology_options(request: pytest.FixtureRequest, name: str) -> tuple[str, dict[str, Any]]:
    """(URL, redis_config) of the named session topology, started on first use."""
    if name == "cluster":
        return request.getfixturevalue("rediq_redis_cluster").url(), {}
    if name == "sentinel":
        return request.getfixturevalue("rediq_redis_sentinel").url(), {}
    server = request.getfixturevalue("rediq_redis_tls_server")
    return server.url(), server.certificates.client_config()


class TestContractOnTopologies(BrokerContract):
    @pytest.fixture(params=TOPOLOGIES)
    async def broker(
        self, request: pytest.FixtureRequest, rediq_namespace: str
    ) -> AsyncIterator[RedisBroker]:
        url, config = topology_options(request, request.param)
        broker = RedisBroker(BrokerOptions(url=url, namespace=rediq_namespace, config=config))
        await broker.connect()
        try:
            yield broker
        finally:
            await broker.close()


async def test_cluster_queues_spread_over_every_master(
    rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    """Six queues land on all three masters; one batch enqueues to all of them, and a
    fetcher per queue gets its tasks from its node."""
    from redis.asyncio.cluster import RedisCluster

    broker = RedisBroker(BrokerOptions(url=rediq_redis_cluster.url(), namespace=rediq_namespace))
    try:
        queues = rediq_redis_cluster.spread_queues(rediq_namespace, 6)
        await broker.enqueue([make_message(q) for q in queues for _ in range(3)])
        session = await broker._ready()
        cluster = session.client
        assert isinstance(cluster, RedisCluster)
        nodes = {
            cluster.get_node_from_key(session.keys.queue(q).key("pending")).name for q in queues
        }
        assert len(nodes) == 3, nodes
        for q in queues:
            assert len((await fetch(broker, queue=q)).deliveries) == 3
    finally:
        await broker.close()


async def test_cluster_worker_blocks_on_every_node_at_once(
    rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    """Fetchers of queues on three nodes each block (BLPOP) on their own queue's node, at
    the same time, and each wakes as soon as its queue gets a task."""
    import asyncio
    import time

    from redis.asyncio import Redis

    broker = RedisBroker(BrokerOptions(url=rediq_redis_cluster.url(), namespace=rediq_namespace))
    queues = rediq_redis_cluster.spread_queues(rediq_namespace, 3)
    admins = [Redis(port=s.port) for s in rediq_redis_cluster.masters()]
    try:
        await broker.connect()
        fetches = [asyncio.ensure_future(fetch(broker, queue=q)) for q in queues]

        async def blocked_per_node() -> list[int]:
            counts = []
            for admin in admins:
                clients = await admin.client_list()
                counts.append(sum(1 for c in clients if c.get("cmd") == "blpop"))
            return counts

        deadline = time.monotonic() + 5
        while await blocked_per_node() != [1, 1, 1]:
            assert time.monotonic() < deadline, await blocked_per_node()
            await asyncio.sleep(0.02)  # bounded wait for the fetchers to block
        started = time.monotonic()
        await broker.enqueue([make_message(q) for q in queues])
        batches = await asyncio.gather(*fetches)
        assert [len(b.deliveries) for b in batches] == [1, 1, 1]
        print(
            f"\n[measure] three blocked fetchers on three nodes woken in"
            f" {(time.monotonic() - started) * 1000:.1f} ms"
        )
    finally:
        for admin in admins:
            await admin.aclose()
        await broker.close()


async def test_cluster_queue_resharded_while_in_use(
    rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    """A queue's slot moves to another master while tasks are leased, a fetcher is
    blocked on it and enqueues go on mid-migration (MOVED, ASK and TRYAGAIN answers):
    nothing is lost and every task is settled once; then the slot moves back."""
    import asyncio

    from redis.crc import key_slot

    from rediq_core.testing.broker_contract import success

    cluster = rediq_redis_cluster
    broker = RedisBroker(BrokerOptions(url=cluster.url(), namespace=rediq_namespace))
    [queue] = cluster.spread_queues(rediq_namespace, 1)
    slot = key_slot(f"{{{rediq_namespace}:{queue}}}".encode())
    home = cluster.master_of_slot(slot)
    elsewhere = next(m for m in cluster.masters() if m is not home)
    try:
        first = [make_message(queue) for _ in range(30)]
        await broker.enqueue(first)
        leased = (await fetch(broker, queue=queue, limit=10)).deliveries
        assert len(leased) == 10
        later = [make_message(queue) for _ in range(20)]
        loop = asyncio.get_running_loop()

        during: list[Any] = []

        def mid_migration() -> None:  # the slot is split between the two nodes now: the
            # scripts answer TRYAGAIN until the migration ends, and are sent again
            during.append(asyncio.run_coroutine_threadsafe(broker.enqueue(later[:10]), loop))

        await asyncio.to_thread(cluster.move_slot, slot, elsewhere, between=mid_migration)
        assert cluster.master_of_slot(slot) is elsewhere
        assert all(o.accepted for o in await asyncio.wrap_future(during[0]))
        await broker.enqueue(later[10:])
        rest = []
        while len(rest) < 40:
            rest += (await fetch(broker, queue=queue)).deliveries
        settled = await broker.settle(
            "worker-1", [success(d.message, delivery=d.deliveries) for d in [*leased, *rest]]
        )
        assert settled == [True] * 50
        ids = {d.message.id for d in [*leased, *rest]}
        assert ids == {m.id for m in [*first, *later]}
        blocked = asyncio.ensure_future(fetch(broker, queue=queue))
        await asyncio.to_thread(cluster.move_slot, slot, home)  # and back, while blocked
        await broker.enqueue([make_message(queue)])
        assert len((await blocked).deliveries) == 1
        stats = await broker.queue_stats(queue)
        assert (stats.pending, stats.active, stats.succeeded) == (0, 1, 50), stats
    finally:
        await broker.close()


@pytest.mark.parametrize("kind", ["rediss+cluster", "rediss+sentinel"])
async def test_tls_forms_of_cluster_and_sentinel(
    rediq_certificates: Any, rediq_namespace: str, kind: str
) -> None:
    """``rediss+cluster://`` and ``rediss+sentinel://``: every node (and every sentinel)
    speaks TLS only and requires the client certificate; a task goes round trip."""
    from rediq_core.testing.broker_contract import success
    from rediq_redis.testing.topologies import ClusterTopology, SentinelTopology

    topology = (
        ClusterTopology(tls=rediq_certificates)
        if kind == "rediss+cluster"
        else SentinelTopology(tls=rediq_certificates)
    )
    with topology:
        url = topology.url()
        assert url.startswith(f"{kind}://")
        broker = RedisBroker(
            BrokerOptions(
                url=url, namespace=rediq_namespace, config=rediq_certificates.client_config()
            )
        )
        try:
            message = make_message(result_ttl_s=60)
            await broker.enqueue([message])
            [delivery] = (await fetch(broker)).deliveries
            assert await broker.settle(
                "worker-1", [success(message, delivery=delivery.deliveries)]
            ) == [True]
            record = await broker.wait_finished(message.id, message.queue, 5)
            assert record is not None and record.result == b"ok"
        finally:
            await broker.close()
