"""What a workflow step costs beside a plain task, and a chord of 10,000 members:
``python benchmarks/workflows.py [--quick]``.

Run it with the rediq benchmark virtualenv (``benchmarks/.venv-rediq/bin/python``,
created by ``run.py``). It starts one throwaway ``redis-server`` and one real worker
process (``rediq worker``, concurrency 100), and measures:

* **Latency**: a plain no-op task enqueued and awaited, one at a time, beside a chain of
  20 no-op steps enqueued and awaited (its time divided by 20: what each step adds).
* **Redis CPU per task** (``INFO cpu`` around the whole run, enqueue and processing,
  result waits included): 500 plain tasks enqueued and awaited one at a time (as a chain's
  steps run), 2,000 plain tasks at once (``enqueue_many``), 100 chains of 20 steps (2,000
  steps), and 2,000 steps of 100 chords of 19 members and a callback.
* **A chord of 10,000 members**: Redis memory per step while it waits (``used_memory``),
  the time from enqueue to the callback's result, and Redis CPU per step.

Nothing here is asserted by a test: it only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from rediq import Rediq, chain, chord, group
from rediq_redis.testing import RedisServer

ROOT = Path(__file__).resolve().parents[1]
CHAIN = 20

app = Rediq(redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))


@app.task(task_name="wf.inc")
async def inc(x: int) -> int:
    return x + 1


@app.task(task_name="wf.total")
async def total(values: list[int]) -> int:
    return sum(values)


async def _cpu_s(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _latencies(n: int) -> tuple[float, float]:
    """Median ms of a plain task, and of each step of a chain of CHAIN steps."""
    plain, steps = [], []
    for _ in range(n):
        started = time.perf_counter()
        await (await inc(0).enqueue()).result(timeout=30)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        workflow = chain(inc(0), *(inc.s() for _ in range(CHAIN - 1)))
        assert await (await workflow.enqueue()).result(timeout=60) == CHAIN
        steps.append((time.perf_counter() - started) / CHAIN)
    return statistics.median(plain) * 1000, statistics.median(steps) * 1000


async def _cpu_per_task(redis: Redis, n: int) -> dict[str, float]:
    """Redis CPU µs per task: plain tasks, chain steps, chord steps (n of each)."""
    out = {}
    before = await _cpu_s(redis)
    for i in range(n // 4):  # the way a chain's steps run: one after the other
        await (await inc(i).enqueue()).result(timeout=120)
    out["plain task, one at a time"] = (await _cpu_s(redis) - before) / (n // 4) * 1e6
    before = await _cpu_s(redis)
    handles = await app.enqueue_many([inc(i) for i in range(n)])
    for handle in handles:
        await handle.result(timeout=120)
    out[f"plain task, {n:,} at once (enqueue_many)"] = (await _cpu_s(redis) - before) / n * 1e6
    before = await _cpu_s(redis)
    chains = [
        await chain(inc(0), *(inc.s() for _ in range(CHAIN - 1))).enqueue()
        for _ in range(n // CHAIN)
    ]
    for handle in chains:
        await handle.result(timeout=120)
    out[f"chain step (chains of {CHAIN})"] = (await _cpu_s(redis) - before) / n * 1e6
    before = await _cpu_s(redis)
    chords = [
        await chord(group(inc(i) for i in range(CHAIN - 1)), total.s()).enqueue()
        for _ in range(n // CHAIN)
    ]
    for handle in chords:
        await handle.result(timeout=120)
    out[f"chord step ({CHAIN - 1} members and a callback)"] = (
        (await _cpu_s(redis) - before) / n * 1e6
    )
    return out


async def _big_chord(redis: Redis, members: int, worker_argv: list[str]) -> dict[str, float]:
    """A chord of ``members``: memory per step while it waits, then (a worker started)
    seconds to its result and Redis CPU µs per step."""
    before = (await redis.info("memory"))["used_memory"]
    handle = await chord(group(inc(i) for i in range(members)), total.s()).enqueue()
    waiting = (await redis.info("memory"))["used_memory"] - before
    cpu = await _cpu_s(redis)
    started = time.perf_counter()
    worker = _spawn(worker_argv)
    try:
        assert await handle.result(timeout=600) == sum(i + 1 for i in range(members))
    finally:
        worker.terminate()
        worker.wait(30)
    return {
        "bytes_per_step_waiting": waiting / (members + 1),
        "seconds_to_result": time.perf_counter() - started,
        "redis_cpu_us_per_step": (await _cpu_s(redis) - cpu) / (members + 1) * 1e6,
    }


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, env=env, cwd=ROOT)


async def run(quick: bool) -> None:
    server = RedisServer().start()
    url = server.url()
    os.environ["BENCH_REDIS_URL"] = url
    app.redis_url = url
    argv = [sys.executable, "-m", "rediq_core.cli", "worker", "benchmarks.workflows:app"]
    argv += ["--redis-url", url, "--worker-task-concurrency", "100", "--log-level", "warning"]
    redis = Redis.from_url(url)
    try:
        worker = _spawn(argv)
        try:
            await (await inc(0).enqueue()).result(timeout=60)  # the worker is up
            plain_ms, step_ms = await _latencies(20 if quick else 100)
            cpu = await _cpu_per_task(redis, 400 if quick else 2_000)
        finally:
            worker.terminate()
            worker.wait(30)
        big = await _big_chord(redis, 2_000 if quick else 10_000, argv)
    finally:
        await redis.aclose()
        await app.close()
        server.stop()
    print("| latency, one at a time (median) | ms |\n|---|---|")
    print(f"| a plain task: enqueue to result | {plain_ms:.2f} |")
    print(f"| a chain step (a chain of {CHAIN}: its time / {CHAIN}) | {step_ms:.2f} |")
    print("\n| redis-server CPU, enqueue and processing | µs per task |\n|---|---|")
    for name, value in cpu.items():
        print(f"| {name} | {value:.1f} |")
    members = 2_000 if quick else 10_000
    print(f"\n| a chord of {members:,} members | |\n|---|---|")
    print(f"| Redis memory per step while it waits | {big['bytes_per_step_waiting']:.0f} B |")
    print(
        f"| enqueue to the callback's result (a worker started) | {big['seconds_to_result']:.1f} s |"
    )
    print(f"| redis-server CPU per step | {big['redis_cpu_us_per_step']:.1f} µs |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    asyncio.run(run(parser.parse_args().quick))


if __name__ == "__main__":
    main()
