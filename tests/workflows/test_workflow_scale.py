"""A chord of 10,000 members on Redis: it completes, its callback gets the 10,000 results in
order, the workflow's Redis memory per step is bounded, and everything it leaves expires
with the results' TTL."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from rediq import Rediq, chord, group
from rediq.testing import run_worker, using_broker

pytestmark = pytest.mark.timeout(300)

MEMBERS, RESULT_TTL_S = 10_000, 600

app = Rediq(redis_url="redis://production.invalid:6379/0")


@app.task(result_ttl=RESULT_TTL_S)
async def square(i: int) -> int:
    return i * i


@app.task(result_ttl=RESULT_TTL_S)
async def summary(values: list[int]) -> tuple[int, int, bool]:
    return len(values), sum(values), values == [i * i for i in range(MEMBERS)]


async def test_a_chord_of_ten_thousand(rediq_redis_url: str, redis: Redis) -> None:
    namespace = f"big{uuid.uuid4().hex[:8]}"
    async with using_broker(app, rediq_redis_url, namespace=namespace):
        before = (await redis.info("memory"))["used_memory"]
        handle = await chord(group(square(i) for i in range(MEMBERS)), summary.s()).enqueue()
        stored = (await redis.info("memory"))["used_memory"] - before
        per_step = stored / (MEMBERS + 1)
        print(f"\nchord of {MEMBERS:,}: {per_step:.0f} B of Redis per step while it waits")
        assert per_step < 1_500, per_step
        async with run_worker(app):
            assert await handle.result(timeout=240) == [
                MEMBERS,
                sum(i * i for i in range(MEMBERS)),
                True,
            ]
        keys = [k.decode() async for k in redis.scan_iter(match=f"{{{namespace}*")]
        ttls = {k: await redis.ttl(k) for k in keys}
        lasting = {k for k, ttl in ttls.items() if ttl == -1}
        bounded = {
            f"{{{namespace}:default}}:{name}"
            for name in ("seq", "stats", "wake", "holders", "workers", "minutes")
        } | {f"{{{namespace}}}:{name}" for name in ("queues", "protocol", "workers")}
        assert lasting <= bounded, lasting - bounded  # the rest expires with the results
        # the results and the workflow's record go with the results' TTL; the minutes ring,
        # the metrics history and the tombstones are the queue's own bounded, expiring metadata
        own = {
            f"{{{namespace}:default}}:{name}"
            for name in ("minutes", "history", "ended_a", "ended_b")
        }
        expiring = {k: ttl for k, ttl in ttls.items() if k not in lasting | own}
        assert len(expiring) == MEMBERS + 2, len(expiring)
        assert f"{{{namespace}:wf:{handle.id}}}" in expiring
        too_long = {k: t for k, t in expiring.items() if not 0 < t <= RESULT_TTL_S}
        assert not too_long, too_long
