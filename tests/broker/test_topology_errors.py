"""Connection failures are one-line errors naming the URL (password masked) and what to
check: sentinels unreachable, an unknown service, a queue whose slot's node is down, TLS
with a CA that did not sign the server's certificate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.backoff import NoBackoff
from redis.crc import key_slot

from rediq_core.broker import BrokerOptions
from rediq_core.errors import BrokerError
from rediq_core.testing.broker_contract import fetch, make_message
from rediq_redis import RedisBroker
from rediq_redis.cluster import SlotUnavailableError
from rediq_redis.connection import BoundedRetry
from rediq_redis.testing import free_port
from rediq_redis.testing.certificates import Certificates
from rediq_redis.testing.topologies import ClusterTopology, SentinelTopology, TlsRedisServer
from rediq_redis.topology import Kind, mask_url, parse_url


async def _connect(url: str, namespace: str, **config: object) -> None:
    broker = RedisBroker(BrokerOptions(url=url, namespace=namespace, config=config))
    try:
        await broker.connect()
    finally:
        await broker.close()


def test_urls_are_parsed_and_masked() -> None:
    url = "rediss+sentinel://me:s3cret@h1:26379,h2/mymaster/2"
    topology = parse_url(url)
    assert topology.kind is Kind.SENTINEL and topology.tls
    assert topology.hosts == (("h1", 26379), ("h2", 26379))
    assert (topology.service, topology.db) == ("mymaster", 2)
    assert (topology.username, topology.password) == ("me", "s3cret")
    assert mask_url(url) == "rediss+sentinel://me:***@h1:26379,h2/mymaster/2"
    cluster = parse_url("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001")
    assert cluster.kind is Kind.CLUSTER and cluster.password == "pw"
    with pytest.raises(BrokerError, match=r"redis\+sentinel://u:\*\*\*@h1:1: name the Sentinel"):
        parse_url("redis+sentinel://u:pw@h1:1")
    with pytest.raises(BrokerError, match="database 0 only"):
        parse_url("redis+cluster://h1:1/3")


async def test_sentinels_unreachable(rediq_namespace: str) -> None:
    url = f"redis+sentinel://me:s3cret@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/svc"
    with pytest.raises(BrokerError) as caught:
        await _connect(url, rediq_namespace)
    message = str(caught.value)
    assert "none of the sentinels" in message and "me:***@" in message, message
    assert "s3cret" not in message and "\n" not in message


async def test_unknown_sentinel_service(
    rediq_redis_sentinel: SentinelTopology, rediq_namespace: str
) -> None:
    url = rediq_redis_sentinel.url().replace("/rediq/", "/nosuchservice/")
    with pytest.raises(
        BrokerError, match="monitor no service named 'nosuchservice'.*check the service name"
    ):
        await _connect(url, rediq_namespace)


async def test_tls_with_a_wrong_ca(
    rediq_redis_tls_server: TlsRedisServer, rediq_namespace: str
) -> None:
    other = Certificates("another")
    try:
        config = {
            **rediq_redis_tls_server.certificates.client_config(),
            "ssl_ca_certs": str(other.ca.cert),
        }
        with pytest.raises(
            BrokerError,
            match=r"rediss://localhost:\d+/0: TLS handshake"
            r" failed.*check redis_config ssl_ca_certs",
        ):
            await _connect(rediq_redis_tls_server.url(), rediq_namespace, **config)
    finally:
        other.close()


@pytest.fixture
def masters_only() -> Iterator[ClusterTopology]:
    with ClusterTopology(replicas=False) as cluster:
        yield cluster


async def test_queue_whose_slot_node_is_down(
    masters_only: ClusterTopology, rediq_namespace: str
) -> None:
    """With no replica to take over, a queue on the dead node fails with an error naming
    its slot and node (after the re-send budget); queues on the other nodes work on."""

    def node(tag: str) -> int:
        return masters_only.master_of_slot(key_slot(tag.encode())).port

    queues = masters_only.spread_queues(rediq_namespace, 3)
    # namespace-wide keys ({NS}: the queue set, the worker registry) stay reachable
    down = next(
        q for q in queues if node(f"{{{rediq_namespace}:{q}}}") != node(f"{{{rediq_namespace}}}")
    )
    up = next(
        q
        for q in queues
        if node(f"{{{rediq_namespace}:{q}}}") not in (node(f"{{{rediq_namespace}:{down}}}"),)
    )
    victim = masters_only.master_of_slot(key_slot(f"{{{rediq_namespace}:{down}}}".encode()))
    config = {"retry": BoundedRetry(NoBackoff(), 0, budget_s=1.0)}
    broker = RedisBroker(
        BrokerOptions(url=masters_only.url(), namespace=rediq_namespace, config=config)
    )
    try:
        await broker.connect()
        victim.kill()
        with pytest.raises(SlotUnavailableError) as caught:
            await broker.enqueue([make_message(down)])
        message = str(caught.value)
        assert f"{{{rediq_namespace}:{down}}}" in message and f":{victim.port}" in message
        assert "check that node" in message and "\n" not in message, message
        await broker.enqueue([make_message(up)])
        assert len((await fetch(broker, queue=up)).deliveries) == 1
    finally:
        await broker.close()


async def test_sentinel_with_passwords(rediq_namespace: str) -> None:
    """The URL's password reaches the sentinels and the servers (all require it); a
    wrong one is a one-line error with the password masked."""
    with SentinelTopology(password="s3cret") as sentinel:
        url = sentinel.url()
        assert ":s3cret@" in url
        broker = RedisBroker(BrokerOptions(url=url, namespace=rediq_namespace))
        try:
            await broker.enqueue([make_message()])
            assert len((await fetch(broker)).deliveries) == 1
        finally:
            await broker.close()
        with pytest.raises(BrokerError) as caught:
            await _connect(url.replace(":s3cret@", ":wrong@"), rediq_namespace)
        message = str(caught.value)
        assert ":***@" in message and "wrong" not in message and "credentials" in message


async def test_cluster_nodes_unreachable(rediq_namespace: str) -> None:
    url = f"redis+cluster://:pw@127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    with pytest.raises(BrokerError) as caught:
        await _connect(url, rediq_namespace)
    message = str(caught.value)
    assert message.startswith("redis+cluster://:***@127.0.0.1:") and "cannot connect" in message
    assert "pw" not in message.replace("***", "") and "\n" not in message, message
