"""The floors under the performance goals rediq does not meet: ``python benchmarks/floors.py``.

Run it with the rediq benchmark virtualenv (``benchmarks/.venv-rediq/bin/python``, created
by ``run.py``): rediq as a user installs it, with hiredis. It starts one throwaway
``redis-server`` and prints three tables of lower bounds, each measured on this machine,
that no change inside rediq's own code can go below:

* **Memory**: the peak RSS of a fresh interpreter that only imports what a rediq worker
  cannot do without (asyncio, ssl, redis-py; then pluggy and rich-click, the plugin and
  CLI libraries the design names), beside a worker's imports and a running worker.
* **One call at a time**: round trips of a ``PING`` and of the enqueue ``EVALSHA``, through
  redis-py's command layer and on a bare redis-py connection (``send_packed_command`` /
  ``read_response``: no pool, retry or instrumentation code between the call and the
  socket), beside the whole ``await noop().enqueue()``.
* **Server time per script call** (``INFO commandstats``): a call sent alone, 0.3 ms after
  the previous one's answer (what an enqueue or a pickup meets), and the same calls 100
  to a pipeline: an ``EVALSHA`` that only returns, one that runs the shared prelude, and
  the enqueue script, and the claim of one ready task. The difference between the first
  two rows and the others is what the scripts' own work costs.
* **The shared task body**: the worker CPU of the benchmark's no-op body alone (its one
  pipelined round trip, identical for every system), 100 at a time.

Nothing here is asserted by a test: it only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from benchmarks import per_task, worker_memory
from rediq_core.app import Rediq
from rediq_redis.scripts import script_source
from rediq_redis.testing.redis_server import RedisServer

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]

#: What each memory row imports (or runs) in a fresh interpreter.
_IMPORTS = {
    "interpreter + asyncio + ssl + redis-py (`redis.asyncio`)": "asyncio, ssl, redis.asyncio",
    "... + pluggy + rich-click (the plugin and CLI libraries)": "asyncio, ssl, redis.asyncio, pluggy, importlib.metadata, rich_click",
    "a worker's imports (`rediq`, the CLI, the Redis broker, the orchestrator)": "rediq, rediq_core.cli.group, rediq_redis.broker, rediq_core.worker.orchestrator",
}

Row = tuple[str, str]


def _peak_rss_mib(imports: str) -> float:
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's at the fork; read
    # inline, as importing a helper would add to what is measured
    code = (
        f"import {imports}\nprint(next(line for line in open('/proc/self/status')"
        " if line.startswith('VmHWM')).split()[1])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return int(done.stdout) / 1024


def memory(url: str) -> list[Row]:
    rows = [(label, f"{_peak_rss_mib(imports):.1f}") for label, imports in _IMPORTS.items()]
    idle = worker_memory.idle_worker_hwm_mib(url)
    rows.append(("an idle `rediq worker` (VmHWM once registered)", f"{idle:.1f}"))
    return rows


#: Each figure is the best of this many rounds (n / ROUNDS calls each): a floor is what the
#: machine can do, and a shared 2-core machine only ever adds to it.
ROUNDS = 5


async def _per_call_us(n: int, step: Callable[[], Awaitable[Any]]) -> float:
    """µs per call of ``step``: the best of :data:`ROUNDS` rounds, after a warm-up."""
    await per_task.per_call_us(min(n, 200), step)
    return min([await per_task.per_call_us(max(1, n // ROUNDS), step) for _ in range(ROUNDS)])


def _enqueue_call(i: int) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one enqueue script call, for a fresh task id."""
    from rediq_redis.keys import QueueKeys, new_nonce

    task_id = f"floor{i}-{time.perf_counter_ns()}"
    envelope = json.dumps(
        {
            "name": "noop",
            "queue": "floor",
            "priority": 0,
            "groups": [],
            "result_ttl_s": 3600,
            "serializer": "json",
        }
    )
    keys = QueueKeys("rediq", "floor")
    return [*keys.all, keys.result(task_id)], [
        task_id,
        envelope,
        b"[[],{}]",
        0,
        "",
        "",
        3600,
        new_nonce(),
    ]


async def round_trips(url: str, n: int) -> list[Row]:
    from rediq_redis.packing import fast_packing

    client = Redis.from_url(url)
    pool = client.connection_pool
    pool.connection_class = fast_packing(pool.connection_class)
    sha = await client.script_load(script_source("enqueue"))
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    counter = iter(range(10**9))

    async def bare(*args: Any) -> Any:
        await conn.send_packed_command(conn.pack_command(*args), check_health=False)
        return await conn.read_response()

    async def bare_enqueue() -> None:
        keys, args = _enqueue_call(next(counter))
        await bare("EVALSHA", sha, len(keys), *keys, *args)

    async def layered_enqueue() -> None:
        keys, args = _enqueue_call(next(counter))
        await client.evalsha(sha, len(keys), *keys, *args)

    rows = [
        ("`PING`, bare redis-py connection", await _per_call_us(n, lambda: bare("PING"))),
        ("`PING`, redis-py command layer", await _per_call_us(n, client.ping)),
        ("the enqueue `EVALSHA`, bare redis-py connection", await _per_call_us(n, bare_enqueue)),
        ("the enqueue `EVALSHA`, redis-py command layer", await _per_call_us(n, layered_enqueue)),
    ]
    await pool.release(conn)
    await client.flushall()
    await client.aclose()
    app = Rediq(redis_url=url)

    @app.task(task_name="noop")
    async def noop() -> None:
        return None

    rows.append(
        ("**whole `await noop().enqueue()`**", await _per_call_us(n, lambda: noop().enqueue()))
    )
    await app.close()
    return [(label, f"{us:.0f}") for label, us in rows]


async def _server_us(
    client: Redis, send: Callable[[Any, int], None], n: int, batch: int, gap_s: float
) -> float:
    """Server time per ``EVALSHA`` (commandstats) of ``n`` calls, ``batch`` per round trip:
    the best of :data:`ROUNDS` rounds."""
    per_round, best, sent = max(batch, n // ROUNDS), float("inf"), 0
    for _ in range(ROUNDS):
        await client.config_resetstat()
        for _ in range(0, per_round, batch):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(batch):
                    send(pipe, sent)
                    sent += 1
                await pipe.execute()
            if gap_s:
                await asyncio.sleep(
                    gap_s
                )  # the server idles between calls, as a lone enqueue finds it
        stats = (await client.info("commandstats"))["cmdstat_evalsha"]
        best = min(best, float(stats["usec_per_call"]))
    return best


def _claim_call(i: int) -> tuple[list[str], list[Any]]:
    """The keys and arguments of a claim of one task (the defaults of a worker)."""
    from rediq_core import defaults
    from rediq_redis.keys import QueueKeys, new_nonce

    keys = QueueKeys("rediq", "floor")
    return list(keys.all), [
        "floor-worker",
        1,
        defaults.LEASE_MS,
        defaults.MAX_DELIVERIES,
        3_600_000,
        10_000,
        100,
        new_nonce(),
    ]


async def server_time(url: str, n: int) -> list[Row]:
    client = Redis.from_url(url)
    enqueue = script_source("enqueue")
    prelude = enqueue.rsplit("return enqueue_tasks(", 1)[0]
    scripts = {
        "`EVALSHA` that returns at once (the enqueue's 23 keys and 8 arguments)": "return 1",
        "... that runs the shared prelude, then returns": prelude + "return 1",
        "the enqueue script": enqueue,
    }
    rows = []
    for label, source in scripts.items():
        sha = await client.script_load(source)

        def send(pipe: Any, i: int, sha: str = sha) -> None:
            keys, args = _enqueue_call(i)
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)

        timings = []
        for batch, gap in ((1, 0.0003), (100, 0.0)):
            timings.append(await _server_us(client, send, n, batch, gap))
            await client.flushall()
        rows.append((label, f"{timings[0]:.1f} | {timings[1]:.1f}"))
    # the claim of one ready task: enqueue n tasks, then lease them one claim at a time
    enqueue_sha = await client.script_load(enqueue)
    claim_sha = await client.script_load(script_source("claim"))

    def claim(pipe: Any, i: int) -> None:
        keys, args = _claim_call(i)
        pipe.execute_command("EVALSHA", claim_sha, len(keys), *keys, *args)

    timings = []
    for batch, gap in ((1, 0.0003), (100, 0.0)):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(n):
                keys, args = _enqueue_call(i)
                pipe.execute_command("EVALSHA", enqueue_sha, len(keys), *keys, *args)
            await pipe.execute()
        timings.append(await _server_us(client, claim, n, batch, gap))
        await client.flushall()
    rows.append(("the claim script, leasing one task", f"{timings[0]:.1f} | {timings[1]:.1f}"))
    await client.aclose()
    return rows


async def task_body(url: str, n: int) -> list[Row]:
    os.environ["BENCH_REDIS_URL"] = url
    from benchmarks import common

    async def runner(count: int) -> None:
        for _ in range(count):
            await common.noop_body()

    await runner(200)
    per_runner, cpu_us = max(1, n // 100), float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        await asyncio.gather(*(runner(per_runner) for _ in range(100)))
        cpu_us = min(cpu_us, (time.process_time() - started) / (per_runner * 100) * 1e6)
    await common.client().aclose()
    return [
        ("the no-op body (`record_done`: one pipelined round trip), 100 at a time", f"{cpu_us:.0f}")
    ]


def render(header: str, rows: list[Row]) -> str:
    columns = header.count("|") + 1
    lines = [f"| {header} |", "|" + "---|" * columns]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="calls per measurement")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        url = server.url()
        print(render("memory | peak RSS, MiB", memory(url)), end="\n\n")
        print(
            render("one call at a time | µs per call", asyncio.run(round_trips(url, args.n))),
            end="\n\n",
        )
        print(
            render(
                "server time per script call (commandstats) | alone, µs | 100 to a pipeline, µs",
                asyncio.run(server_time(url, args.n)),
            ),
            end="\n\n",
        )
        print(
            render(
                "shared task body | worker CPU per task, µs", asyncio.run(task_body(url, args.n))
            )
        )
    finally:
        server.close()


if __name__ == "__main__":
    main()
