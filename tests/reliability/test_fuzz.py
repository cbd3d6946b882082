"""Fuzz: garbage reaching a worker is dead-lettered with its reason; the worker goes on.

Random bytes and random JSON as envelope and payload, forged and missing signatures, a
serializer the app does not accept, truncated messages: written straight into Redis with
the enqueue script (as a hostile or broken producer could), while one real worker runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rediq import Rediq, TaskState
from rediq_core.broker import BrokerOptions
from rediq_core.message import TaskMessage
from rediq_redis import RedisBroker
from rediq_redis.keys import new_nonce

from ..worker.conftest import Harness

pytestmark = pytest.mark.timeout(180)

KEY = "fuzz-signing-key-" + "k" * 16
APP = f"""
app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
            namespace=os.environ["REDIQ_TEST_NAMESPACE"], signing_key={KEY!r})

@app.task
async def add(a, b):
    return a + b
"""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


def _valid(app: Rediq) -> TaskMessage:
    add = app.tasks["add"]
    return app.signer.sign(app.build_message(add(1, 2)))


@st.composite
def bad_messages(draw: st.DrawFn, app: Rediq) -> tuple[str, bytes, bytes]:
    """(kind, envelope, payload) of a message that must be refused."""
    kind = draw(
        st.sampled_from(
            [
                "bytes",
                "json",
                "payload",
                "forged",
                "unsigned",
                "serializer",
                "truncated",
                "tampered",
            ]
        )
    )
    good = _valid(app)
    if kind == "bytes":
        return kind, draw(st.binary(max_size=200)), draw(st.binary(max_size=50))
    if kind == "json":
        return kind, json.dumps(draw(json_values)).encode(), draw(st.binary(max_size=50))
    if kind == "payload":  # signed, but the payload is not what the serializer reads
        junk = dataclasses.replace(good, payload=draw(st.binary(max_size=80)), signature="")
        signed = app.signer.sign(junk)
        return kind, signed.envelope(), signed.payload
    if kind == "forged":
        digest = draw(st.text("0123456789abcdef", min_size=64, max_size=64))
        prefix = good.signature.rsplit(":", 1)[0]
        forged = dataclasses.replace(good, signature=f"{prefix}:{digest}")
        return kind, forged.envelope(), forged.payload
    if kind == "unsigned":
        bare = dataclasses.replace(good, signature="")
        return kind, bare.envelope(), bare.payload
    if kind == "serializer":
        other = app.signer.sign(dataclasses.replace(good, serializer="pickle", signature=""))
        return kind, other.envelope(), other.payload
    if kind == "truncated":
        cut = draw(st.integers(1, max(1, len(good.payload) - 1)))
        return kind, good.envelope(), good.payload[:-cut]
    tampered = dataclasses.replace(good, name=draw(st.text(min_size=1, max_size=20)))
    return kind, tampered.envelope(), tampered.payload


def test_garbage_is_dead_lettered_with_its_reason_and_the_worker_goes_on(
    harness: Harness,
) -> None:
    m = harness.write_app(APP)
    worker = harness.start()
    loop = asyncio.new_event_loop()
    broker = RedisBroker(BrokerOptions(url=harness.url, namespace=harness.namespace))
    reasons: dict[str, int] = {}

    async def write_and_check(items: list[tuple[str, bytes, bytes]]) -> None:
        session = await broker._ready()
        ids = []
        for _, envelope, payload in items:
            task_id = f"fuzz-{uuid.uuid4().hex[:12]}"
            keys = session.keys.queue("default").for_task(task_id)
            # enqueue_tasks' args: id, envelope, payload, priority, eta, delay, ttl, nonce
            args = [task_id, envelope, payload, 0, "", "", 60, new_nonce()]
            await session.scripts.enqueue(session.client, keys, args)
            ids.append(task_id)
        deadline = time.monotonic() + 10
        for (kind, _, _), task_id in zip(items, ids, strict=True):
            while (
                record := await broker.get_task(task_id, "default")
            ) is None or record.state is not TaskState.FAILED:
                assert time.monotonic() < deadline, f"{kind} message {task_id} not refused"
                await asyncio.sleep(0.01)
            assert record.error is not None and record.error.message, record
            reasons[kind] = reasons.get(kind, 0) + 1

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(bad_messages(m.app), min_size=1, max_size=6))
    def check(items: list[tuple[str, bytes, bytes]]) -> None:
        loop.run_until_complete(write_and_check(items))

    try:
        check()
        good: Any = loop.run_until_complete(m.add(20, 22).enqueue())
        assert loop.run_until_complete(good.result(timeout=10)) == 42
    finally:
        loop.run_until_complete(broker.close())
        loop.run_until_complete(m.app.close())
        loop.close()
    assert worker.proc.poll() is None, "the worker crashed"
    assert not worker.matching("internal (error|component)"), worker.output[-3000:]
    print(f"\nfuzz: refused {sum(reasons.values())} messages, by kind {sorted(reasons.items())}")
    assert len(reasons) >= 6, reasons
