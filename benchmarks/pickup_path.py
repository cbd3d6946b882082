"""Where a pickup's time goes: ``python benchmarks/pickup_path.py [--samples N]``.

Run it with the rediq benchmark virtualenv (``benchmarks/.venv-rediq/bin/python``,
created by ``run.py``). It starts one throwaway ``redis-server`` and measures the pickup
of ``run.py`` (an idle worker; the producer enqueues ``record_latency(time.time_ns())``
and waits for the task's report before sending the next one) three ways:

* **floor**: the same ping-pong with no task framework at all: the producer ``LPUSH``es
  its timestamp, a bare redis-py worker blocked in ``BLPOP`` reports when it got it.
  What any redis-py based queue pays on this machine before its own code runs.
* **rediq, along the path**: a real ``rediq worker`` with timestamps taken at each stage
  (patched in from outside, so the worker runs its normal code): when the producer's
  call reaches the broker's round trip, when the enqueue call returns, when the worker's
  blocked fetch returns with the handed task, when the task enters the local queue, and
  when the task's first line runs (the pickup ``run.py`` reports).
* **server time per script** of the same path, from ``SLOWLOG`` (threshold 0, which
  adds a few microseconds to every command): the enqueue with its hand-off, the
  worker's settlement and its registration as waiting, with their ``redis.call``s.

Medians over ``--samples`` pickups after 20 warm-up ones. Nothing here is asserted by a
test: it only prints.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from benchmarks import common
from rediq_redis.scripts import script_source
from rediq_redis.testing.redis_server import RedisServer

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 20

#: A worker that only pops: the floor.
_BARE_WORKER = """
import asyncio, sys, time
from redis.asyncio import Redis
async def main(url):
    pop = Redis.from_url(url, socket_timeout=None)
    report = Redis.from_url(url, socket_timeout=None)
    while True:
        _, value = await pop.blpop(["floor:queue"], 0)
        await report.rpush("floor:latency", time.time_ns() - int(value))
asyncio.run(main(sys.argv[1]))
"""

#: A rediq worker with a timestamp at each stage of a pickup; its probe reports them all.
_STAMPED_WORKER = """
import sys, time
import rediq_core.worker.fetcher as fetcher
import rediq_redis.leasing as leasing
from benchmarks import common
stamps = {}
register_and_block = leasing._register_and_block
async def stamped_wait(*args, **kwargs):
    popped = await register_and_block(*args, **kwargs)
    stamps["popped"] = time.time_ns()
    return popped
leasing._register_and_block = stamped_wait
take = fetcher.Fetcher._take
def stamped_take(self, batch):
    stamps["taken"] = time.time_ns()
    return take(self, batch)
fetcher.Fetcher._take = stamped_take
async def probe_body(reference_ns):
    now = time.time_ns()
    report = ",".join(str(t - reference_ns) for t in (stamps["popped"], stamps["taken"], now))
    await common.client().rpush(common.KEY_LATENCY, report)
common.probe_body = probe_body
from rediq_core.cli import main
sys.argv = ["rediq", *sys.argv[1:]]
main()
"""


def _median_us(samples: list[float]) -> str:
    return f"{statistics.median(samples) / 1e3:,.0f}"


async def _ready(client: Redis) -> None:
    while True:
        try:
            await client.ping()
            return
        except Exception:
            await asyncio.sleep(0.05)


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env)


async def floor(url: str, n: int) -> list[float]:
    worker = _spawn([sys.executable, "-c", _BARE_WORKER, url])
    client = Redis.from_url(url, socket_timeout=None)
    try:
        await asyncio.sleep(1)
        samples = []
        for i in range(WARMUP + n):
            await client.lpush("floor:queue", time.time_ns())
            _, lag = await client.blpop(["floor:latency"], 10)
            if i >= WARMUP:
                samples.append(float(lag))
        return samples
    finally:
        worker.terminate()
        worker.wait()
        await client.aclose()


async def rediq_path(url: str, n: int) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    os.environ["BENCH_REDIS_URL"] = url
    import rediq_redis.wire as wire
    from benchmarks.rediq_app import TASKS, app

    sent: list[int] = []
    round_trip = wire.HotLine._round_trip

    async def stamped_round_trip(self: Any, connection: Any, packed: Any) -> Any:
        sent.append(time.time_ns())
        return await round_trip(self, connection, packed)

    wire.HotLine._round_trip = stamped_round_trip  # type: ignore[method-assign]
    argv = ["worker", "benchmarks.rediq_app:app", "--redis-url", url]
    argv += ["--worker-task-concurrency", "100", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = _spawn([sys.executable, "-c", _STAMPED_WORKER, *argv], env)
    client = Redis.from_url(url, socket_timeout=None)
    probe = TASKS[common.PROBE]
    stages: dict[str, list[float]] = {
        "producer code until its round trip starts": [],
        "enqueue call returned": [],
        "worker's blocked fetch returned the handed task": [],
        "task in the worker's local queue": [],
        "task's first line runs (run.py's pickup)": [],
    }
    scripts: dict[str, list[int]] = {}
    names = {_sha(name): name for name in ("enqueue", "settle", "wait", "claim")}
    try:
        await asyncio.sleep(2)
        for slowlog in (False, True):
            for i in range(WARMUP + n):
                if i == WARMUP and slowlog:
                    await client.config_set("slowlog-max-len", 100_000)
                    await client.config_set("slowlog-log-slower-than", 0)
                    await client.slowlog_reset()
                reference = time.time_ns()
                await probe(reference).enqueue()
                returned = time.time_ns()
                _, report = await client.blpop([common.KEY_LATENCY], 10)
                if i < WARMUP or slowlog:
                    continue
                popped, taken, started = (float(x) for x in report.split(b","))
                values = (sent[-1] - reference, returned - reference, popped, taken, started)
                for samples, value in zip(stages.values(), values, strict=True):
                    samples.append(value)
        await client.config_set("slowlog-log-slower-than", 10_000)
        for entry in await client.slowlog_get(100_000):
            command = entry["command"].split()
            if command[0].upper() == b"EVALSHA":
                name = names.get(command[1].decode(), command[1].decode()[:8])
                scripts.setdefault(name, []).append(int(entry["duration"]))
        return stages, scripts
    finally:
        worker.terminate()
        worker.wait()
        await client.aclose()
        await app.close()


def _sha(name: str) -> str:
    import hashlib

    return hashlib.sha1(script_source(name).encode()).hexdigest()


async def run(samples: int) -> None:
    server = RedisServer().start()
    try:
        url = server.url()
        bare = await floor(url, samples)
        stages, scripts = await rediq_path(url, samples)
    finally:
        server.stop()
    print(f"pickup, medians of {samples} samples, µs after the producer's reference time\n")
    print("| path | µs |\n|---|---|")
    print(f"| floor: bare redis-py `LPUSH` → `BLPOP` worker | {_median_us(bare)} |")
    for stage, values in stages.items():
        print(f"| rediq: {stage} | {_median_us(values)} |")
    print("\n| script on this path (SLOWLOG on) | calls | median server µs |\n|---|---|---|")
    for name, durations in sorted(scripts.items(), key=lambda kv: -len(kv[1])):
        print(f"| {name} | {len(durations)} | {statistics.median(durations):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    asyncio.run(run(parser.parse_args().samples))


if __name__ == "__main__":
    main()
