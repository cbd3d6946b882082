"""Stored cron specs: unreadable ones are skipped (logged), newer fields are ignored."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from rediq_core import defaults
from rediq_core.broker import BrokerOptions
from rediq_core.cron_records import ScheduleSpec
from rediq_core.testing.cron_contract import CRON_QUEUE, make_spec
from rediq_redis import BrokerSettings, RedisBroker


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


async def test_cron_fire_passes_enqueue_the_producers_keys_and_arguments(
    broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cron_fire.lua embeds enqueue.lua: it must get the very KEYS and ARGV the producer
    gives enqueue (this fails if one changes without the other)."""
    from typing import Any

    from rediq_redis.scripts import LuaScript, ScriptCall

    calls: dict[str, tuple[list[str], list[Any]]] = {}
    call, invoke = LuaScript.call, LuaScript.__call__

    def recording_call(self: LuaScript, keys: Any, args: Any) -> ScriptCall:
        calls[self.name] = (list(keys), list(args))
        return call(self, keys, args)

    async def recording(self: LuaScript, client: Any, keys: Any, args: Any) -> Any:
        calls[self.name] = (list(keys), list(args))
        return await invoke(self, client, keys, args)

    monkeypatch.setattr(LuaScript, "call", recording_call)
    monkeypatch.setattr(LuaScript, "__call__", recording)
    spec = make_spec("coupled")
    message = spec.message("cron:coupled:1000", tick_ms=1000, eta_ms=1000)
    await broker.enqueue([message])
    await broker.delete(message.id, CRON_QUEUE)
    await broker.cron_fire(message, spec.name, 1000)
    enqueue_keys, enqueue_args = calls["enqueue"]
    fire_keys, fire_args = calls["cron_fire"]
    assert fire_keys == enqueue_keys
    assert fire_args[2:] == enqueue_args


async def test_cron_fire_keeps_its_reply_for_the_brokers_replay_window(
    rediq_redis_url: str, redis: Redis, rediq_namespace: str
) -> None:
    """A fired tick's reply key lives as long as the broker's settings say (a re-sent fire
    is recognised for exactly as long as a re-sent enqueue), not the default window."""
    replay_ms = 4 * defaults.REPLAY_WINDOW_MS
    broker = RedisBroker(
        BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace),
        BrokerSettings(replay_window_ms=replay_ms),
    )
    try:
        spec = make_spec("replayed")
        await broker.cron_fire(
            spec.message(spec.task_id(1000), tick_ms=1000, eta_ms=1000), spec.name, 1000
        )
    finally:
        await broker.close()
    replies = [k async for k in redis.scan_iter(f"{{{rediq_namespace}:*:reply:*")]
    assert len(replies) == 1, replies
    assert defaults.REPLAY_WINDOW_MS < await redis.pttl(replies[0]) <= replay_ms
