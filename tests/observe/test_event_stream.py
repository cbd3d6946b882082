"""The event stream end to end: a real worker runs tasks while ``rediq events --follow
--json`` (a subprocess) prints their events as they happen; ``--since`` resumes after an
event id; ``Rediq.events()`` reads the same stream, and on a Redis Cluster reads the
queues of several nodes at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from rediq import Rediq, TaskEvent, TaskEventKind
from tests.control.conftest import cli

from .conftest import Harness, WorkerProcess

pytestmark = pytest.mark.timeout(120)

APP = """
app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
            namespace=os.environ["REDIQ_TEST_NAMESPACE"], event_stream_length=1000)

@app.task(task_queue="ev")
async def ok(n):
    return n

@app.task(task_queue="ev", task_retries=1)
async def flaky(n):
    if current_task_retried() == 0:
        raise ValueError(f"first attempt of {n}")
    return n
"""


def events_of(process: WorkerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in process.matching(r'^\{"id": ')]


def story(events: list[dict[str, Any]], task_id: str) -> list[tuple[str, int]]:
    return [(e["kind"], e["attempt"]) for e in events if e["task_id"] == task_id]


async def test_follow_prints_a_workers_events_as_json_lines(harness: Harness) -> None:
    m = harness.write_app(APP)
    first = await m.ok(1).enqueue()
    retried = await m.flaky(2).enqueue()
    harness.start("--queue-name", "ev", "--skip-default-queue")
    follower = WorkerProcess(
        ["events", "ev", "--app", "tasks:app", "--follow", "--json", "--since", "0"],
        harness.dir,
        harness.env,
    )
    harness.workers.append(follower)  # stopped at teardown
    follower.wait_for(r'"kind": "succeeded"', count=2, timeout=30)
    seen = events_of(follower)
    assert story(seen, first.hex()) == [("enqueued", 1), ("started", 1), ("succeeded", 1)]
    assert story(seen, retried.hex()) == [
        ("enqueued", 1),
        ("started", 1),
        ("retried", 1),
        ("started", 2),
        ("succeeded", 2),
    ]
    retry = next(e for e in seen if e["kind"] == "retried")
    assert retry["detail"] == "builtins.ValueError: first attempt of 2", retry
    assert retry["task_name"] == "flaky", retry

    later = await m.ok(3).enqueue()  # while the follower blocks in its read
    follower.wait_for(r'"kind": "succeeded"', count=3, timeout=30)
    assert story(events_of(follower), later.hex())[-1] == ("succeeded", 1)

    # resuming after an event gives exactly the events after it
    cut = seen[3]
    resumed = await cli(harness, "events", "ev", "--json", "--since", cut["id"], app=True)
    assert resumed.code == 0, resumed
    after = [json.loads(line) for line in resumed.out.splitlines()]
    everything = events_of(follower)
    assert after == everything[everything.index(cut) + 1 :]

    # the table form, from a time ago
    table = await cli(harness, "events", "ev", "--since", "10m", app=True)
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert len(lines) == len(everything), table.out
    assert "retried" in lines[everything.index(retry)] and "#1" in table.out, table.out

    # without events in a queue, the command says why
    empty = await cli(harness, "events", "ev", "--since", "$")
    assert empty.code == 1 and "event_stream_length" in empty.err, empty


async def test_app_events_reads_and_resumes(harness: Harness) -> None:
    m = harness.write_app(APP)
    handles = [await m.ok(n).enqueue() for n in range(3)]
    app: Rediq = m.app
    kept = [e async for e in app.events(["ev"], "0", follow=False)]
    assert [e.task_id for e in kept] == [h.hex() for h in handles]
    assert all(isinstance(e, TaskEvent) and e.kind is TaskEventKind.ENQUEUED for e in kept)
    assert [e async for e in app.events(["ev"], kept[0].id, follow=False)] == kept[1:]
    assert [e async for e in app.events(None, kept[-1].time, follow=False)][-1] == kept[-1]
    following = app.events(["ev"])  # only events to come
    nxt = asyncio.ensure_future(anext(following))
    try:
        for n in range(100):  # until the follower has begun (it starts at "$": then)
            await m.ok(10 + n).enqueue()
            done, _ = await asyncio.wait({nxt}, timeout=0.1)  # bounded wait for one event
            if done:
                break
        assert nxt.done(), "app.events() saw none of 100 tasks enqueued while it followed"
        event = nxt.result()
        assert event.kind is TaskEventKind.ENQUEUED
        assert event.task_id not in {h.hex() for h in handles}
    finally:
        nxt.cancel()
        await following.aclose()  # type: ignore[attr-defined]


async def test_bad_since_is_refused_at_once(harness: Harness) -> None:
    m = harness.write_app(APP)
    await m.ok(1).enqueue()
    with pytest.raises(ValueError, match="not an event id"):
        m.app.events(["ev"], "ev:nonsense")  # at once, before any read
    with pytest.raises(ValueError, match="no time zone"):
        m.app.events(["ev"], dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="list of queue names"):
        m.app.events("ev")
    bad = await cli(harness, "events", "ev", "--since", "yesterday")
    assert bad.code == 2 and "--since 'yesterday'" in bad.err, bad
    with pytest.raises(ValueError, match="event_stream_length"):
        Rediq(redis_url=harness.url, event_stream_length=-1)


async def test_a_cluster_follows_queues_on_every_master(
    rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    """Queues on three masters: one follower reads each queue's stream on its node, at
    once, and resumes each queue after its own event id."""
    from rediq_core.broker import BrokerOptions
    from rediq_core.roles import events
    from rediq_core.task_events import follow_events
    from rediq_core.testing.contract.helpers import make_message
    from rediq_redis import RedisBroker

    options = BrokerOptions(
        url=rediq_redis_cluster.url(), namespace=rediq_namespace, event_stream_length=100
    )
    broker = RedisBroker(options)
    queues = rediq_redis_cluster.spread_queues(rediq_namespace, 3)
    try:
        first = [make_message(q) for q in queues]
        await broker.enqueue(first)
        seen = [e async for e in follow_events(events(broker), queues, "0", follow=False)]
        assert sorted(e.task_id for e in seen) == sorted(m.id for m in first)
        following = follow_events(events(broker), queues, [e.id for e in seen])
        try:
            later = [make_message(q) for q in queues]
            await broker.enqueue(later)
            got = [await asyncio.wait_for(anext(following), 10) for _ in later]
            assert sorted(e.task_id for e in got) == sorted(m.id for m in later)
            assert {e.queue for e in got} == set(queues)
        finally:
            await following.aclose()
    finally:
        await broker.close()
