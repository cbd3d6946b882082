"""Stored cron specs: unreadable ones are skipped (logged), newer fields are ignored."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from rediq_core.cron_records import ScheduleSpec
from rediq_core.testing.cron_contract import CRON_QUEUE, make_spec
from rediq_redis import RedisBroker


async def test_unreadable_spec_is_skipped_and_new_fields_ignored(
    broker: RedisBroker, redis: Redis, rediq_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_spec("good")
    await broker.cron_register(CRON_QUEUE, {"good": good.to_json()})
    newer = json.loads(make_spec("newer").to_json()) | {"added_later": 1}
    key = f"{{{rediq_namespace}:{CRON_QUEUE}}}:cron"
    await redis.hset(key, mapping={"broken": "{not json", "newer": json.dumps(newer)})
    entries = {e.spec.name: e.spec for e in await broker.cron_entries()}
    assert entries == {"good": good, "newer": make_spec("newer")}
    assert "skipping schedule 'broken'" in caplog.text
    with pytest.raises(ValueError, match="not a stored cron schedule spec"):
        ScheduleSpec.from_json('{"name": "x"}')
