"""What many waiting worker processes cost one Redis, idle and per task (2 against 50).

redis-server CPU and commands with 2 and with 50 ``rediq worker`` processes on one queue:

    .venv/bin/python benchmarks/many_workers.py [--workers 2,50] [--tasks 2000]
        [--pace 200] [--rate 5] [--rate-tasks 100] [--idle 20]

Each worker count gets a throwaway redis-server and that many ``rediq worker`` processes
(concurrency 4, no prefetch), started in parallel; the measurements begin once every one
is in the registry and waits, registered in the queue's ``idle`` list. Then, in order:

* **idle**: ``--idle`` s with no task: redis-server CPU (``INFO cpu`` user + sys) and
  commands (``INFO stats`` ``total_commands_processed``, which counts the ``redis.call``s
  of scripts too) per second: the background cost of waiting workers;
* **one at a time**: ``--tasks`` no-op tasks, each enqueued once the previous one's result
  came back (``handle.result()``), at most ``--pace`` per s: every task finds the workers
  waiting. The pace is the same for every worker count because Redis CPU per task depends
  on the rate (fewer commands per event-loop turn, more system calls per command);
  ``--pace 0`` runs them back to back;
* **steady rate**: ``--rate-tasks`` tasks at ``--rate`` per s, then one lease more: each
  worker's tasks are more than a lease apart (with 50 workers), so whatever a task leaves
  behind that wakes the waiting workers (a holder's deadline) shows;
* **steady rate, delayed**: the same, each task due 1 s after its enqueue;
* **burst**: ``--tasks`` tasks enqueued in one ``enqueue_many`` and drained by all the
  workers (the figures include the enqueue);
* **idle after**: ``--idle`` s with no task again, right after the burst.

Per task: redis-server CPU and commands over the window, raw and net of the idle
background (the idle window's rate times the window's length). How many waits a task
ends comes from ``INFO commandstats``: every ``BLPOP`` of a worker's wait is counted once,
when it returns (a task handed over, a wake token or its timeout ended it); the idle
window's rate of them (timeouts: one per worker per lease) is taken off. A herd (a task
that ends every waiting worker's wait, each then claiming) shows as about the worker
count; one task handed over ends one wait but also replaces that worker's next timeout,
so without a herd the figure is between 0 and 1. ``LPOP``: the waiting workers the
enqueue's hand-off popped. Script calls: ``EVALSHA``, every claim among them. Nothing
asserts: benchmarks/README.md ("Many idle workers") carries the table.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from benchmarks.common import stop_workers
from rediq import Rediq
from rediq_core import defaults, roles
from rediq_redis.testing import RedisServer

APP = """
import os
from rediq import Rediq

app = Rediq(redis_url=os.environ["BENCH_REDIS_URL"])

@app.task
async def noop() -> None:
    return None
"""
MODULE = "many_workers_app"
DELAY_S = 1.0  # how long after its enqueue a delayed task is due
#: Commands whose calls are counted per task (see the module docstring).
COUNTED = ("blpop", "lpop", "lrem", "evalsha")


@dataclass(frozen=True)
class Snapshot:
    at: float  # monotonic s
    cpu_s: float  # redis-server user + sys
    commands: int
    calls: dict[str, int]  # per command in COUNTED

    def __sub__(self, before: Snapshot) -> Window:
        return Window(
            self.at - before.at,
            self.cpu_s - before.cpu_s,
            self.commands - before.commands,
            {name: self.calls[name] - before.calls[name] for name in COUNTED},
        )


@dataclass(frozen=True)
class Window:
    seconds: float
    cpu_s: float
    commands: int
    calls: dict[str, int]

    def per_s(self, value: float) -> float:
        return value / self.seconds


async def snapshot(redis: Redis) -> Snapshot:
    info = await redis.info("all")
    return Snapshot(
        time.monotonic(),
        float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        int(info["total_commands_processed"]),
        {name: int(info.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in COUNTED},
    )


async def measured(redis: Redis, step: Callable[[], Awaitable[Any]]) -> Window:
    before = await snapshot(redis)
    await step()
    return await snapshot(redis) - before


def start_workers(folder: Path, url: str, count: int, log: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(folder)}
    command = [
        sys.executable,
        "-m",
        "rediq_core.cli",
        "worker",
        f"{MODULE}:app",
        "--log-level",
        "warning",
        "--worker-task-concurrency",
        "4",
    ]
    with log.open("ab") as out:
        return [
            subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=out)
            for _ in range(count)
        ]


def tail(log: Path) -> str:
    return log.read_text()[-2000:]


async def waiting_workers(redis: Redis) -> int:
    """Workers registered as waiting, over every queue's ``idle`` list."""
    return sum([await redis.llen(key) async for key in redis.scan_iter(match="*:idle")])


async def wait_ready(
    app: Rediq, redis: Redis, workers: list[subprocess.Popen[bytes]], log: Path
) -> float:
    """Wait (bounded) until every worker is registered and waits for a task; the time."""
    started = time.monotonic()
    deadline = started + 60 + 3 * len(workers)
    while time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            raise RuntimeError(f"a worker exited at start-up:\n{tail(log)}")
        registered = len(await app.control.workers())
        if registered >= len(workers) and await waiting_workers(redis) >= len(workers):
            return time.monotonic() - started
        await asyncio.sleep(0.5)  # the benchmark's own progress check
    raise RuntimeError(f"{len(workers)} workers not all waiting after {deadline - started:.0f} s")


async def one_at_a_time(app: Rediq, noop: Any, tasks: int, pace: float) -> None:
    """Each task enqueued once the one before ended, at most ``pace`` per s (0: no bound)."""
    started = time.monotonic()
    for i in range(tasks):
        if pace:
            await asyncio.sleep(max(0.0, started + i / pace - time.monotonic()))  # the pace
        handle = await app.enqueue_many([noop()])
        await handle[0].result(timeout=30)


async def steady(app: Rediq, noop: Any, tasks: int, rate: float, delay: float = 0.0) -> None:
    """``tasks`` tasks at ``rate`` per s (not waiting for them), each due ``delay`` s after
    its enqueue; then until a lease after the last one, so the wake-ups its holder's
    deadline could cause fall in the window."""
    started = time.monotonic()
    handles = []
    for i in range(tasks):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))  # the rate
        handles += await app.enqueue_many([noop().options(delay=delay) if delay else noop()])
    for handle in handles:
        await handle.result(timeout=30)
    await asyncio.sleep(defaults.LEASE_MS / 1000 + 1)


async def burst(app: Rediq, noop: Any, tasks: int, done_before: int) -> None:
    await app.enqueue_many([noop() for _ in range(tasks)])
    control = roles.control(app.get_broker())
    deadline = time.monotonic() + 60 + tasks / 10
    while (await control.queue_stats("default")).succeeded < done_before + tasks:
        if time.monotonic() > deadline:
            raise RuntimeError("the burst was not drained in time")
        await asyncio.sleep(0.05)  # the benchmark's own progress check


async def measure(folder: Path, count: int, args: argparse.Namespace) -> dict[str, Any]:
    tasks, idle_s, pace = args.tasks, args.idle, args.pace
    rate_tasks, rate_per_s = args.rate_tasks, args.rate
    server = RedisServer().start()
    redis = Redis.from_url(server.url())
    os.environ["BENCH_REDIS_URL"] = server.url()
    module = importlib.import_module(MODULE)
    app: Rediq = module.app
    log = folder / f"workers-{count}.log"
    workers = start_workers(folder, server.url(), count, log)
    try:
        ready_s = await wait_ready(app, redis, workers, log)
        await asyncio.sleep(2)  # the last start-up calls (heartbeats, first claims) end
        idle = await measured(redis, lambda: asyncio.sleep(idle_s))
        low = await measured(redis, lambda: one_at_a_time(app, module.noop, tasks, pace))
        rate = await measured(redis, lambda: steady(app, module.noop, rate_tasks, rate_per_s))
        later = await measured(
            redis, lambda: steady(app, module.noop, rate_tasks, rate_per_s, DELAY_S)
        )
        done = tasks + 2 * rate_tasks
        high = await measured(redis, lambda: burst(app, module.noop, tasks, done))
        after = await measured(redis, lambda: asyncio.sleep(idle_s))
        return {
            "ready_s": ready_s,
            "idle": idle,
            "low": low,
            "rate": rate,
            "later": later,
            "high": high,
            "after": after,
        }
    finally:
        stop_workers(workers)
        await app.close()
        await redis.aclose()
        server.close()
        sys.modules.pop(MODULE, None)


def rows(found: dict[str, Any], tasks: int, rate_tasks: int) -> list[tuple[str, float]]:
    """The figures of one worker count, labelled."""
    idle: Window = found["idle"]
    cpu_rate, commands_rate = idle.per_s(idle.cpu_s), idle.per_s(idle.commands)
    waits_rate = idle.per_s(idle.calls["blpop"])
    out = [
        ("idle: redis-server CPU (ms per s)", cpu_rate * 1e3),
        ("idle: commands per s", commands_rate),
        ("idle: waits ended (BLPOP returns) per s", waits_rate),
    ]
    for mode, label, n in (
        ("low", "one at a time", tasks),
        ("rate", "steady rate", rate_tasks),
        ("later", "steady rate, delayed", rate_tasks),
        ("high", "burst", tasks),
    ):
        w: Window = found[mode]
        out += [
            (f"{label}: redis-server CPU per task (µs)", w.cpu_s / n * 1e6),
            (f"{label}: same, net of idle (µs)", (w.cpu_s - cpu_rate * w.seconds) / n * 1e6),
            (f"{label}: commands per task", w.commands / n),
            (f"{label}: same, net of idle", (w.commands - commands_rate * w.seconds) / n),
            (
                f"{label}: waits ended per task, beyond the idle rate",
                (w.calls["blpop"] - waits_rate * w.seconds) / n,
            ),
            (f"{label}: waiting workers popped (LPOP) per task", w.calls["lpop"] / n),
            (f"{label}: script calls per task", w.calls["evalsha"] / n),
            (f"{label}: tasks per s", n / w.seconds),
        ]
    after: Window = found["after"]
    out += [
        ("idle after: redis-server CPU (ms per s)", after.per_s(after.cpu_s) * 1e3),
        ("idle after: commands per s", after.per_s(after.commands)),
        ("idle after: waits ended per s", after.per_s(after.calls["blpop"])),
    ]
    return out


def per_worker(table: dict[int, list[tuple[str, float]]], first: int, last: int) -> str:
    """What one more waiting worker adds to the idle background (the idle rows)."""
    more = last - first
    cpu, commands, waits = ((table[last][i][1] - table[first][i][1]) / more for i in range(3))
    return (
        f"one more waiting worker, idle: {commands:.2f} commands, {waits:.3f} waits ended"
        f" and {cpu * 1e3:.1f} µs of redis-server CPU per s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="2,50", help="worker counts, comma-separated")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument(
        "--pace",
        type=float,
        default=200.0,
        help="one at a time: at most this many per s (0: no bound)",
    )
    parser.add_argument("--rate", type=float, default=5.0, help="steady rate, tasks per s")
    parser.add_argument("--rate-tasks", type=int, default=100)
    parser.add_argument("--idle", type=float, default=20.0, help="idle window, s")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    table: dict[int, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / f"{MODULE}.py").write_text(APP)
        sys.path.insert(0, str(folder))
        for count in counts:
            found = await measure(folder, count, args)
            print(f"{count} workers: all waiting {found['ready_s']:.0f} s after start", flush=True)
            table[count] = rows(found, args.tasks, args.rate_tasks)
    first, last = counts[0], counts[-1]
    print(
        f"\n| {args.tasks} no-op tasks per mode | "
        + " | ".join(f"{n} workers" for n in counts)
        + f" | {last} / {first} |\n|---|"
        + "---|" * (len(counts) + 1)
    )
    for i, (label, _) in enumerate(table[first]):
        values = [table[n][i][1] for n in counts]
        ratio = f"{values[-1] / values[0]:.2f}x" if values[0] > 0 else "-"
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {ratio} |")
    if last != first:
        print(f"\n{per_worker(table, first, last)}")


if __name__ == "__main__":
    asyncio.run(main())
