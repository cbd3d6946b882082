"""The cron role: a broker that supports ``@app.cron`` must fire each tick once however
many workers race for it, consume paused ticks without runs, store specs, pauses and last
runs, and announce changed specs."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Protocol

from rediq_core.cron_records import FireResult, ScheduleSpec
from rediq_core.message import now_ms
from rediq_core.records import TaskState
from rediq_core.roles import Cron, Results, Role

from .helpers import RoleContract, until_announced

__all__ = ["CRON_QUEUE", "CronBroker", "CronContract", "make_spec"]

CRON_QUEUE = "contract-cron"


class CronBroker(Cron, Results, Protocol):
    """What the cron tests use: the cron role, and task lookups to see a fired run."""


def make_spec(name: str = "every-minute", **overrides: object) -> ScheduleSpec:
    fields: dict[str, object] = {
        "name": name,
        "task": "contract.task",
        "queue": CRON_QUEUE,
        "expression": "* * * * *",
        "timezone": "UTC",
        "missed": "skip",
        "jitter_ms": 0,
        "serializer": "json",
        "payload": b"[[],{}]",
        "priority": 0,
        "retries": 0,
        "timeout_ms": None,
        "result_ttl_s": 60,
    }
    fields.update(overrides)
    return ScheduleSpec(**fields)  # type: ignore[arg-type]


async def _fire(broker: Cron, spec: ScheduleSpec, tick: int) -> FireResult:
    message = spec.message(spec.task_id(tick), tick_ms=tick, eta_ms=None)
    return (await broker.cron_fire(message, spec.name, tick)).result


async def _register(broker: Cron, spec: ScheduleSpec) -> list[str]:
    return (await broker.cron_register(CRON_QUEUE, {spec.name: spec.to_json()})).changed


class CronContract(RoleContract):
    role = Role.CRON
    requires: ClassVar[frozenset[Role]] = frozenset({Role.RESULTS})

    async def test_cron_tick_fires_once_among_racing_workers(self, broker: CronBroker) -> None:
        spec = make_spec()
        before = now_ms()
        await _register(broker, spec)
        registered = now_ms()
        tick = now_ms() // 1000 * 1000
        results = await asyncio.gather(*(_fire(broker, spec, tick) for _ in range(20)))
        assert results.count(FireResult.FIRED) == 1, results
        assert set(results) == {FireResult.FIRED, FireResult.ALREADY}
        record = await broker.get_task(spec.task_id(tick), CRON_QUEUE)
        assert record is not None and record.state is TaskState.PENDING
        assert record.message is not None and record.message.headers["cron"] == spec.name
        assert await _fire(broker, spec, tick - 1000) is FireResult.ALREADY  # never back
        later = await broker.cron_fire(
            spec.message(spec.task_id(tick + 1000), tick_ms=tick + 1000, eta_ms=None),
            spec.name,
            tick + 1000,
        )
        assert later.result is FireResult.FIRED and later.previous_tick_ms == tick
        [entry] = await broker.cron_entries(CRON_QUEUE)
        assert entry.spec == spec and entry.last_tick_ms == tick + 1000
        assert entry.last_task_id == spec.task_id(tick + 1000)
        # seen when registered, on the broker's clock (allowed to be a second off this one)
        assert before - 1000 <= entry.seen_ms <= registered + 1000, (before, entry.seen_ms)
        assert not entry.paused

    async def test_cron_pause_resume_trigger_forget(self, broker: CronBroker) -> None:
        spec = make_spec("paused")
        assert await _register(broker, make_spec("other")) == ["other"]
        assert not await broker.cron_set_paused(CRON_QUEUE, spec.name, True)  # not stored
        assert await _register(broker, spec) == [spec.name]
        same = await broker.cron_register(CRON_QUEUE, {spec.name: spec.to_json()})
        assert (same.changed, same.conflicting) == ([], [])
        assert await broker.cron_set_paused(CRON_QUEUE, spec.name, True)
        tick = now_ms()
        assert await _fire(broker, spec, tick) is FireResult.PAUSED
        assert await broker.get_task(spec.task_id(tick), CRON_QUEUE) is None
        manual = spec.message("manual-run", tick_ms=None, eta_ms=None)
        assert (await broker.cron_fire(manual, spec.name, None)).result is FireResult.FIRED
        entry = {e.spec.name: e for e in await broker.cron_entries(CRON_QUEUE)}[spec.name]
        assert entry.paused and entry.last_task_id == "manual-run"
        assert await broker.cron_set_paused(CRON_QUEUE, spec.name, False)
        assert await _fire(broker, spec, tick + 1) is FireResult.FIRED
        changed = make_spec("paused", expression="*/5 * * * *")
        refresh = await broker.cron_register(
            CRON_QUEUE, {spec.name: changed.to_json()}, replace=False
        )  # a running old deployment
        assert (refresh.changed, refresh.conflicting) == ([], [spec.name])
        stored = {e.spec.name: e.spec for e in await broker.cron_entries(CRON_QUEUE)}
        assert stored[spec.name] == spec
        store = await broker.cron_register(CRON_QUEUE, {spec.name: changed.to_json()})
        assert (store.changed, store.conflicting) == ([spec.name], [])
        assert await broker.cron_forget(CRON_QUEUE, spec.name)
        assert not await broker.cron_forget(CRON_QUEUE, spec.name)
        assert [e.spec.name for e in await broker.cron_entries()] == ["other"]

    async def test_cron_changes_are_announced(self, broker: CronBroker) -> None:
        await _register(broker, make_spec("announced"))

        async def change(attempt: int) -> None:
            changed = make_spec("announced", expression=f"{attempt} * * * *")
            await broker.cron_register(CRON_QUEUE, {"announced": changed.to_json()})

        await until_announced(broker.cron_changes(), change, "announced", "a changed schedule")
