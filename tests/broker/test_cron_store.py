"""Stored cron specs: unreadable ones are skipped (logged), newer fields are ignored."""

from __future__ import annotations

import hashlib
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
    """cron_fire.lua embeds enqueue.lua (the prelude's enqueue_tasks): it must get the
    very KEYS and ARGV the producer gives enqueue for one task, but for the call's nonce
    (this fails if one changes without the other)."""
    from typing import Any

    from rediq_redis.scripts import LuaScript, ScriptCall

    calls: dict[str, tuple[list[str], list[Any]]] = {}
    call, invoke = LuaScript.call, LuaScript.__call__

    def recording_call(self: LuaScript, keys: Any, args: Any, *rest: Any) -> ScriptCall:
        calls[self.name] = (list(keys), list(args))
        return call(self, keys, args, *rest)

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
    assert len(fire_args[2:]) == len(enqueue_args) == 8  # one task: enqueue_tasks' args
    assert fire_args[2:-1] == enqueue_args[:-1]
    assert fire_args[-1] and fire_args[-1] != enqueue_args[-1]  # a nonce of its own


async def test_cron_fire_is_remembered_for_the_brokers_replay_window(
    rediq_redis_url: str, redis: Redis, rediq_namespace: str
) -> None:
    """A fired tick's run leaves its tombstone (the id's digest -> the fire's nonce, see
    tomb_field() in the Lua prelude) for as long as the broker's settings say (a re-sent
    fire is recognised for exactly as long as a re-sent enqueue), not the default
    window."""
    replay_ms = 4 * defaults.REPLAY_WINDOW_MS
    broker = RedisBroker(
        BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace),
        BrokerSettings(replay_window_ms=replay_ms),
    )
    try:
        spec = make_spec("replayed")
        task_id = spec.task_id(1000)
        await broker.cron_fire(spec.message(task_id, tick_ms=1000, eta_ms=1000), spec.name, 1000)
        assert await broker.delete(task_id, CRON_QUEUE)  # it ends: its tombstone stays
    finally:
        await broker.close()
    tag = f"{{{rediq_namespace}:{CRON_QUEUE}}}"
    field = hashlib.sha1(task_id.encode()).hexdigest()[:16]
    tombs = [k for k in (f"{tag}:ended_a", f"{tag}:ended_b") if await redis.hexists(k, field)]
    assert len(tombs) == 1, tombs
    assert 2 * defaults.REPLAY_WINDOW_MS < await redis.pttl(tombs[0]) <= 2 * replay_ms
