"""Sharded queues without a broker: shard names, the declarations (code, constructor,
environment) and the producer's routing (docs/scaling.md)."""

from __future__ import annotations

from collections import Counter

import pytest

from rediq import Rediq
from rediq_core.errors import ConfigurationError
from rediq_core.flow import Flow, Rate
from rediq_core.options import check_queue
from rediq_core.shards import QueueShards, logical_queue, parse_shard, parse_shards_setting


def test_a_shard_name_says_its_queue_and_its_number_of_shards() -> None:
    shard = parse_shard("emails#3of8")
    assert shard is not None and (shard.queue, shard.index, shard.count) == ("emails", 3, 8)
    assert shard.name == "emails#3of8" and logical_queue("emails#3of8") == "emails"
    for bad in ("emails", "emails#8of8", "emails#03of8", "emails#1of999", "#1of2", "a#b#1of2"):
        assert parse_shard(bad) is None, bad
    assert check_queue("emails#3of8") == "emails#3of8"
    with pytest.raises(ConfigurationError, match="task_queue='emails#8of8'"):
        check_queue("emails#8of8")


def test_routing_is_stable_and_keeps_what_shares_state_together() -> None:
    shards = QueueShards({"q": 4})
    assert [shards.route("q") for _ in range(8)] == [f"q#{i % 4}of4" for i in range(8)]
    # by key: the same in every process and release (a change would move keyed tasks)
    assert [shards.by_key("q", k) for k in "abcd"] == ["q#3of4", "q#1of4", "q#3of4", "q#3of4"]
    assert shards.route("q", task_id="order-1") == shards.route("q", task_id="order-1")
    limited = Flow(concurrency=(("c:send:u1", 1),), rates=(("r:send:u1", Rate(1, 1000, 1)),))
    only_rate = Flow(rates=(("r:send:u1", Rate(1, 1000, 1)),))
    assert shards.route("q", flow=limited) == shards.route("q", flow=only_rate)
    assert shards.route("q", flow=limited, shard_key="x") == shards.by_key("q", "x")
    assert shards.route("other") == "other" and shards.route("q#1of4") == "q#1of4"
    spread = Counter(shards.route("q", task_id=f"t{i}") for i in range(4_000))
    assert min(spread.values()) > 900, spread


def test_shards_come_from_code_the_constructor_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIQ_QUEUE_SHARDS", "emails=8, reports=4")
    app = Rediq(redis_url="memory://", queue_shards={"emails": 8, "audit": 2})
    assert app.shards.counts == {"emails": 8, "audit": 2, "reports": 4}
    assert app.queue("bulk", shards=3).shard_names == ("bulk#0of3", "bulk#1of3", "bulk#2of3")
    assert app.queue("bulk", shards=3).shards == 3  # the same declaration again is fine
    with pytest.raises(ConfigurationError, match="12 shards in queue_shards= but 8"):
        Rediq(redis_url="memory://", queue_shards={"emails": 12})
    monkeypatch.setenv("REDIQ_QUEUE_SHARDS", "emails")
    with pytest.raises(ConfigurationError, match="queue=shards pairs"):
        Rediq(redis_url="memory://")
    with pytest.raises(ConfigurationError, match="shards=300"):
        parse_shards_setting("big=300", "REDIQ_QUEUE_SHARDS")


def test_a_schedule_declared_before_its_queue_is_routed_to_a_shard() -> None:
    app = Rediq(redis_url="memory://")

    @app.cron("0 3 * * *", name="nightly")
    @app.task(task_queue="emails")
    async def ping() -> None: ...

    assert app.schedules["nightly"].spec.queue == "emails"
    app.queue("emails", shards=4)
    routed = app.schedules["nightly"].spec.queue
    assert parse_shard(routed) is not None and routed == app.shards.by_key("emails", "cron:nightly")
