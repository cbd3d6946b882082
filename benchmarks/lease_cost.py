"""What fast crash recovery costs Redis: redis-server CPU per task with the default leases
(5 s, renewed every second) against 30 s leases renewed every 10 s, same workload.

    .venv/bin/python benchmarks/lease_cost.py [--tasks 2000] [--sleep 0.5]

Each setting gets a throwaway redis-server; one ``rediq worker`` (concurrency 100,
prefetch 200) drains tasks that sleep ``--sleep`` s (long tasks are where renewals show);
redis-server CPU (user + sys, from INFO) is divided by the task count. Nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from rediq import Rediq
from rediq_redis.testing import RedisServer

APP = """
import asyncio, os
from rediq import Rediq

app = Rediq(redis_url=os.environ["BENCH_REDIS_URL"])

@app.task
async def nap(sec):
    await asyncio.sleep(sec)
"""
SETTINGS = {
    "default (5 s lease, renewed every 1 s)": {},
    "before (30 s lease, renewed every 10 s)": {
        "REDIQ_LEASE_MS": "30000",
        "REDIQ_LEASE_RENEW_MS": "10000",
    },
}


async def _cpu_s(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(folder: Path, env: dict[str, str], tasks: int, sleep: float) -> float:
    server = RedisServer().start()
    redis = Redis.from_url(server.url())
    worker_env = {**os.environ, **env, "BENCH_REDIS_URL": server.url(), "PYTHONPATH": str(folder)}
    os.environ["BENCH_REDIS_URL"] = server.url()
    sys.path.insert(0, str(folder))
    import lease_app  # the module written below

    app: Rediq = lease_app.app
    app.redis_url = server.url()
    worker = subprocess.Popen(  # noqa: ASYNC220 - the benchmark starts its worker once
        [
            sys.executable,
            "-m",
            "rediq_core.cli",
            "worker",
            "lease_app:app",
            "--log-level",
            "warning",
            "--worker-task-concurrency",
            "100",
            "--worker-queue-size",
            "200",
        ],
        cwd=folder,
        env=worker_env,
    )
    try:
        await app.enqueue_many([lease_app.nap(sleep) for _ in range(tasks)])
        before = await _cpu_s(redis)
        broker = app.get_broker()
        while (await broker.queue_stats("default")).succeeded < tasks:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # the benchmark's own progress check
        return (await _cpu_s(redis) - before) / tasks * 1e6
    finally:
        worker.terminate()
        worker.wait(30)
        await app.close()
        await redis.aclose()
        server.close()
        sys.modules.pop("lease_app", None)
        sys.path.remove(str(folder))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--sleep", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "lease_app.py").write_text(APP)
        print(
            f"| setting | redis-server CPU per task (µs); {args.tasks} tasks of"
            f" {args.sleep} s |\n|---|---|"
        )
        for label, env in SETTINGS.items():
            started = time.monotonic()
            cost = await measure(folder, env, args.tasks, args.sleep)
            print(f"| {label} | {cost:.1f} (run {time.monotonic() - started:.0f} s) |")


if __name__ == "__main__":
    asyncio.run(main())
