"""A million-task backlog: the time of each operation, and Redis memory per task, as one
queue's pending backlog grows from 10^3 to 10^6 tasks; then, at the largest backlog, how
long the overview answers (``app.control.overview()``, ``rediq queues``, the dashboard's
overview page ``/`` and its queue page), and the purge of the whole backlog.

    .venv/bin/python benchmarks/backlog.py [--max 1000000] [--samples 200]
    .venv/bin/python benchmarks/backlog.py --quick      # --max 100000

One throwaway redis-server (no persistence), one queue. The backlog is filled with
``enqueue_many`` in batches of 1,000 up to each level (10^3, 10^4, ... up to ``--max``),
plus 10 groups of 100 tasks tagged ``g<level>-<k>``. At each level, each figure is the
median (and p95) in microseconds over ``--samples`` operations, as the client waits for
it, with Redis's own time per operation beside it (mean, from ``INFO commandstats``: the
scripts' time, or every command's for the listings, which run no script), in this order:

* cancel by group: ``app.control.cancel_group(group, queue)`` of each 100-task group, per
  cancelled task (10 samples; the backlog falls back to its level);
* enqueue: one awaited ``enqueue()`` of a no-op task;
* claim: one fetch of 1 task without waiting (the consumer role, as a worker calls it),
  taken from the head of the backlog (which the enqueues above topped up again);
* settle: settling each claimed lease as succeeded, one call each;
* list page: ``app.control.tasks(queue, PENDING, limit=100)`` at the head, and the page
  at the middle of the backlog (the cursor is an offset);
* memory per task: ``used_memory`` (``INFO memory``) added by the plain (ungrouped) tasks
  of the level's fill, divided by their count, and the whole used memory over the backlog.

The tasks keep no result (``result_ttl=0``), so settled and cancelled tasks leave only
their tombstones (gone within two replay windows). At the largest level: the median of 10
overviews each way, then ``app.control.purge`` of the whole backlog, timed as a whole and
call by call from Redis's SLOWLOG (each ``purge_state`` call's own server time, grouped by
the level nearest to the backlog it found, and the longest call). Prints markdown tables; writes the raw figures to
``benchmarks/results/backlog.json``. Nothing asserts: benchmarks/README.md ("Million-task
backlog") carries the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from click.testing import CliRunner
from redis.asyncio import Redis

from rediq import Rediq
from rediq_core import roles
from rediq_core.broker import Settlement, TaskState
from rediq_core.cli import main as rediq_cli
from rediq_core.records import Delivery
from rediq_dashboard import create_dashboard
from rediq_redis.testing import RedisServer

HERE = Path(__file__).parent
QUEUE = "backlog"
NAMESPACE = "backlog-bench"
WORKER = "backlog-worker"
LEASE_MS = 600_000
FILL_BATCH = 1000
GROUPS, GROUP_SIZE = 10, 100
PAGE = 100
OVERVIEW_SAMPLES = 10
#: SLOWLOG threshold while purging: above any one command, below a script call's batch.
SLOW_CALL_US = 500
#: Commands the benchmark sends itself to read the server's figures.
_NOT_SENT = {"cmdstat_config|resetstat", "cmdstat_info", "cmdstat_script|load"}
T = TypeVar("T")

app = Rediq(namespace=NAMESPACE)


@app.task(task_name="backlog.noop", task_queue=QUEUE, result_ttl=0)
async def noop(i: int = 0) -> None:
    """Never runs: the benchmark claims and settles it itself."""


def summary(samples_us: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_us)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p95": p95, "n": len(ordered)}


async def timed(step: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await step()
    return (time.perf_counter() - started) * 1e6


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def pending(redis: Redis) -> int:
    return int(await redis.zcard(f"{{{NAMESPACE}:{QUEUE}}}:pending"))


async def fill(count: int, start: int) -> None:
    """Enqueue ``count`` plain tasks in batches of FILL_BATCH."""
    for first in range(start, start + count, FILL_BATCH):
        await app.enqueue_many(
            [noop(i) for i in range(first, min(first + FILL_BATCH, start + count))]
        )


async def fill_groups(level: int) -> list[str]:
    """GROUPS groups of GROUP_SIZE tasks each, interleaved; return the group names."""
    names = [f"g{level}-{k}" for k in range(GROUPS)]
    calls = [noop(-1).groups(names[i % GROUPS]) for i in range(GROUPS * GROUP_SIZE)]
    for first in range(0, len(calls), FILL_BATCH):
        await app.enqueue_many(calls[first : first + FILL_BATCH])
    return names


async def cancel_group_of(name: str) -> int:
    outcomes = await app.control.cancel_group(name, QUEUE)
    assert all(o == "cancelled" for o in outcomes.values()), outcomes
    return len(outcomes)


async def cancel_groups(names: Sequence[str]) -> list[float]:
    """Per cancelled task, each group's cancel."""
    per_task = []
    for name in names:
        started = time.perf_counter()
        cancelled = await cancel_group_of(name)
        elapsed = (time.perf_counter() - started) * 1e6
        assert cancelled == GROUP_SIZE, (name, cancelled)
        per_task.append(elapsed / GROUP_SIZE)
    return per_task


async def claims(samples: int) -> tuple[list[float], list[Delivery]]:
    consumer = roles.consumer(app.get_broker())
    times, delivered = [], []
    for _ in range(samples):
        started = time.perf_counter()
        batch = await consumer.fetch(
            QUEUE, worker_id=WORKER, limit=1, lease_ms=LEASE_MS, wait=False
        )
        times.append((time.perf_counter() - started) * 1e6)
        assert len(batch.deliveries) == 1, batch
        delivered += batch.deliveries
    return times, delivered


async def settles(delivered: Sequence[Delivery]) -> list[float]:
    consumer = roles.consumer(app.get_broker())
    times = []
    for d in delivered:
        settlement = Settlement(d.message.id, QUEUE, result=b"null", delivery=d.deliveries)
        started = time.perf_counter()
        [stored] = await consumer.settle(WORKER, [settlement])
        times.append((time.perf_counter() - started) * 1e6)
        assert stored
    return times


async def pages(samples: int, offset: int | None) -> list[float]:
    cursor = None if offset is None else str(offset)
    return [
        await timed(lambda: app.control.tasks(QUEUE, TaskState.PENDING, limit=PAGE, cursor=cursor))
        for _ in range(samples)
    ]


async def server_us(redis: Redis, step: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    """What ``step`` returns, and the server time of the commands it sent: the scripts'
    own (``EVALSHA``, which includes the commands they run) if it ran any, else every
    command's (``INFO commandstats``)."""
    await redis.config_resetstat()
    found = await step()
    stats = await redis.info("commandstats")
    if "cmdstat_evalsha" in stats:
        return found, float(stats["cmdstat_evalsha"]["usec"])
    return found, sum(float(v["usec"]) for k, v in stats.items() if k not in _NOT_SENT)


async def warm_up() -> None:
    """Every script loaded and the queue's lasting keys written before memory is read."""
    await app.enqueue_many([noop(0), noop(0).groups("warm-up")])
    await cancel_group_of("warm-up")
    _, delivered = await claims(1)
    await settles(delivered)
    await app.control.tasks(QUEUE, TaskState.PENDING, limit=PAGE)
    await app.control.overview()
    await app.control.purge(QUEUE, [TaskState.PENDING])


async def measure_level(
    redis: Redis, level: int, samples: int, baseline: int, filled: int
) -> dict[str, Any]:
    """Fill the backlog up to ``level`` and time every operation there: client µs per
    operation (``<op>_us``) and Redis's own (``<op>_server_us``, mean)."""
    before = await used_memory(redis)
    added = level - await pending(redis)
    await fill(added, filled)
    after = await used_memory(redis)
    names = await fill_groups(level)
    row: dict[str, Any] = {
        "level": level,
        "bytes_per_task_added": (after - before) / added,
        "bytes_per_pending_task": (after - baseline) / level,
    }

    def note(name: str, times: list[float], usec: float, count: int) -> None:
        row[f"{name}_us"], row[f"{name}_server_us"] = summary(times), usec / count

    note(
        "cancel_group_per_task",
        *await server_us(redis, lambda: cancel_groups(names)),
        GROUPS * GROUP_SIZE,
    )
    assert await pending(redis) == level

    async def enqueues() -> list[float]:
        return [await timed(lambda: noop(-2).enqueue()) for _ in range(samples)]

    note("enqueue", *await server_us(redis, enqueues), samples)
    (claim_us, delivered), usec = await server_us(redis, lambda: claims(samples))
    note("claim", claim_us, usec, samples)
    note("settle", *await server_us(redis, lambda: settles(delivered)), samples)
    note("list_head", *await server_us(redis, lambda: pages(samples, None)), samples)
    note("list_deep", *await server_us(redis, lambda: pages(samples, level // 2)), samples)
    row["pending_after"] = await pending(redis)
    return row | {"filled": filled + added}


def _cli_queues(url: str) -> None:
    result = CliRunner().invoke(rediq_cli, ["queues", "--redis-url", url, "--namespace", NAMESPACE])
    assert result.exit_code == 0, result.output
    assert QUEUE in result.output, result.output


async def overviews(url: str) -> dict[str, dict[str, float]]:
    """Milliseconds to answer the queue overview, each way (median of OVERVIEW_SAMPLES)."""
    shown = Rediq(redis_url=url, namespace=NAMESPACE)
    transport = httpx.ASGITransport(app=create_dashboard(shown))
    found: dict[str, list[float]] = {
        "control_overview": [],
        "rediq_queues": [],
        "dashboard": [],
        "dashboard_queue": [],
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        for _ in range(OVERVIEW_SAMPLES + 1):  # the first round opens connections
            found["control_overview"].append(await timed(lambda: app.control.overview()))
            found["rediq_queues"].append(await timed(lambda: asyncio.to_thread(_cli_queues, url)))
            started = time.perf_counter()
            response = await client.get("/")
            found["dashboard"].append((time.perf_counter() - started) * 1e6)
            assert response.status_code == 200 and QUEUE in response.text, response.status_code
            started = time.perf_counter()
            response = await client.get(f"/queues/{QUEUE}")
            found["dashboard_queue"].append((time.perf_counter() - started) * 1e6)
            assert response.status_code == 200, response.status_code
    await shown.close()
    return {
        k: {m: v if m == "n" else v / 1000 for m, v in summary(t[1:]).items()}
        for k, t in found.items()
    }


async def purge(redis: Redis, total: int) -> dict[str, Any]:
    """Purge the whole backlog. Each ``purge_state`` call's own server time comes from the
    SLOWLOG (which logs a script's inner commands too: the threshold leaves them out, and
    a batch of 1,000 tasks takes longer than it)."""
    await redis.config_set("slowlog-max-len", total // 100 + 100)
    await redis.config_set("slowlog-log-slower-than", SLOW_CALL_US)
    await redis.slowlog_reset()
    started = time.perf_counter()
    removed = await app.control.purge(QUEUE, [TaskState.PENDING])
    wall_s = time.perf_counter() - started
    log = await redis.slowlog_get(total // 100 + 100)
    await redis.config_set("slowlog-log-slower-than", 10_000)
    scripts = [e["duration"] for e in reversed(log) if e["command"].startswith(b"EVALSHA")]
    batch = removed / max(len(scripts), 1)  # the last call, which finds nothing, is too quick
    buckets: dict[str, list[float]] = {}
    for k, duration in enumerate(scripts):
        found = total - k * batch  # the backlog this call found
        level = 10 ** round(math.log10(found))  # the level it is nearest to
        buckets.setdefault(str(level), []).append(duration / batch)
    return {
        "removed": removed,
        "wall_s": wall_s,
        "per_task_us": wall_s * 1e6 / max(removed, 1),
        "calls": len(scripts),
        "longest_call_ms": max(scripts, default=0) / 1000,
        "server_us_per_task_by_backlog": {k: summary(v) for k, v in buckets.items()},
    }


_OVERVIEW_ROWS = (
    ("`app.control.overview()`", "control_overview"),
    ("`rediq queues` (in-process CLI)", "rediq_queues"),
    ("dashboard overview `/`", "dashboard"),
    (f"dashboard queue page `/queues/{QUEUE}`", "dashboard_queue"),
)


def _cell(figure: dict[str, float]) -> str:
    return f"{figure['median']:.0f} ({figure['p95']:.0f})"


def render(rows: Sequence[dict[str, Any]], overview: dict[str, Any], purged: dict[str, Any]) -> str:
    columns = [
        ("enqueue", "enqueue"),
        ("claim", "claim"),
        ("settle", "settle"),
        ("list page (head)", "list_head"),
        ("list page (middle)", "list_deep"),
        ("cancel by group, per task", "cancel_group_per_task"),
    ]
    levels = [f"{r['level']:,}" for r in rows]
    lines = [
        "| µs per operation, median (p95) | " + " | ".join(levels) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for label, key in columns:
        lines.append(f"| {label} | " + " | ".join(_cell(r[f"{key}_us"]) for r in rows) + " |")
    lines.append("| **Redis µs per operation (mean)** |" + " |" * len(rows))
    for label, key in columns:
        cells = " | ".join(f"{r[f'{key}_server_us']:.1f}" for r in rows)
        lines.append(f"| {label} | {cells} |")
    by_backlog = purged["server_us_per_task_by_backlog"]
    purge_cells = [
        f"{by_backlog[str(r['level'])]['median']:.1f}" if str(r["level"]) in by_backlog else "-"
        for r in rows
    ]
    lines.append(
        "| purge, server µs per task (median of its calls) | " + " | ".join(purge_cells) + " |"
    )
    lines.append(
        "| memory per task added (B) | "
        + " | ".join(f"{r['bytes_per_task_added']:.0f}" for r in rows)
        + " |"
    )
    lines.append(
        "| memory over the backlog (B per pending task) | "
        + " | ".join(f"{r['bytes_per_pending_task']:.0f}" for r in rows)
        + " |"
    )
    top = rows[-1]["level"]
    lines += [
        "",
        f"| at {top:,} pending | ms, median (p95) of {OVERVIEW_SAMPLES} |",
        "|---|---:|",
        *(
            f"| {label} | {overview[key]['median']:.1f} ({overview[key]['p95']:.1f}) |"
            for label, key in _OVERVIEW_ROWS
        ),
        "",
        f"purge of {purged['removed']:,} pending tasks: {purged['wall_s']:.1f} s"
        f" ({purged['per_task_us']:.1f} µs per task) in {purged['calls']} script calls;"
        f" the longest call held Redis {purged['longest_call_ms']:.1f} ms",
    ]
    return "\n".join(lines)


async def main(top: int, samples: int) -> dict[str, Any]:
    server = RedisServer().start()
    url = server.url()
    app.redis_url = url
    redis = Redis.from_url(url)
    try:
        await warm_up()
        baseline = await used_memory(redis)
        rows: list[dict[str, Any]] = []
        filled = 0
        level = 1000
        while level <= top:
            started = time.monotonic()
            row = await measure_level(redis, level, samples, baseline, filled)
            filled = row["filled"]
            rows.append(row)
            print(f"level {level:,}: measured in {time.monotonic() - started:.0f} s", flush=True)
            level *= 10
        overview = await overviews(url)
        purged = await purge(redis, await pending(redis))
        print(render(rows, overview, purged), flush=True)
        return {"levels": rows, "overview_ms": overview, "purge": purged}
    finally:
        await app.close()
        await redis.aclose()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=1_000_000, help="the largest backlog")
    parser.add_argument("--quick", action="store_true", help="--max 100000")
    parser.add_argument("--samples", type=int, default=200, help="operations per figure")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "backlog.json")
    args = parser.parse_args()
    figures = asyncio.run(main(100_000 if args.quick else args.max, args.samples))
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
