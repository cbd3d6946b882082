"""Group delete of ended tasks on Redis: their result hashes are found by a SCAN whose
pattern matches the queue's (or the namespace's) result keys only, whatever characters
the names hold."""

from __future__ import annotations

from rediq_core.broker import BrokerOptions, CancelOutcome
from rediq_core.testing.broker_contract import enqueue_one
from rediq_redis import RedisBroker

GLOBBY = ["a*", "a[b]", "ab", "a?b", "a\\b", "ab]"]


async def test_queue_names_holding_glob_characters_match_only_themselves(
    broker: RedisBroker,
) -> None:
    ended = {}
    for queue in GLOBBY:
        message = await enqueue_one(broker, queue=queue, groups=("g",))
        assert await broker.cancel(message.id, queue) is CancelOutcome.CANCELLED
        ended[queue] = message.id
    for queue in GLOBBY:
        assert await broker.delete_group("g", queue) == 1, queue
        assert await broker.get_task(ended[queue], queue) is None
        for other in GLOBBY[GLOBBY.index(queue) + 1 :]:
            assert await broker.get_task(ended[other], other) is not None, (queue, other)


async def test_a_namespace_holding_glob_characters_matches_only_itself(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    brokers = [
        RedisBroker(BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace + suffix))
        for suffix in ("*", "x")
    ]
    try:
        ids = []
        for broker in brokers:
            for queue in ("q1", "q2"):
                message = await enqueue_one(broker, queue=queue, groups=("g",))
                assert await broker.cancel(message.id, queue) is CancelOutcome.CANCELLED
                ids.append(message.id)
        assert await brokers[0].delete_group("g") == 2
        assert await brokers[1].get_task(ids[2]) is not None
        assert await brokers[1].delete_group("g") == 2
    finally:
        for broker in brokers:
            await broker.close()
