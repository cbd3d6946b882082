"""Shared by every system under test: workload drivers, task-side recording, the CLI.

This module imports only the standard library and redis-py, because it runs both in the
project virtualenv (rediq) and in the peers virtualenv (arq, saq, streaq, taskiq).

Each system provides an :class:`Adapter` (how to enqueue, how to run its worker) and
calls :func:`main`. The orchestrator (``run.py``) drives it with subcommands:

* ``worker`` runs that system's worker (concurrency 100) until SIGTERM/SIGINT;
* ``produce WORKLOAD --n N`` runs one producer workload and prints one JSON line.

Task bodies call :func:`record_done` / :func:`record_latency`, which write into the
benchmark's Redis (URL in ``BENCH_REDIS_URL``) so every system is measured the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

CONCURRENCY = 100
BATCH_SIZE = 100
PREFILL_CHUNK = 500
WARMUP_ENQUEUES = 100
WARMUP_PICKUPS = 10
SLEEP_S = 0.01

KEY_DONE = "bench:done"
KEY_FIRST = "bench:first_ns"
KEY_LAST = "bench:last_ns"
KEY_LATENCY = "bench:latency"

#: The task names every system registers (the no-op, the 10 ms sleep, the latency probe).
NOOP, SLEEP, PROBE = "noop", "sleep_10ms", "record_latency"

_client: Redis | None = None


def redis_url() -> str:
    return os.environ["BENCH_REDIS_URL"]


def client() -> Redis:
    """The worker-side client the task bodies record with (one per process).

    The same settings in every virtualenv, those of the peers' redis-py 5: no socket
    timeout and no bound on the pool. redis-py 6 and later default to a 5 s socket timeout
    (on Python 3.11 a timeout makes every command start an extra asyncio task) and to at
    most 100 pooled connections, which measurably slowed the 10 ms sleep drain (100
    bodies at once): the same body would cost rediq's worker more than the peers'.
    """
    global _client
    if _client is None:
        _client = Redis.from_url(
            redis_url(), socket_timeout=None, socket_connect_timeout=None, max_connections=2**31
        )
    return _client


# --- task bodies (identical for every system) ----------------------------------------


async def record_done(started_ns: int) -> None:
    """Count one finished drain task and track the first start / last finish times."""
    async with client().pipeline(transaction=False) as pipe:
        pipe.set(KEY_FIRST, started_ns, nx=True)
        pipe.incr(KEY_DONE)
        pipe.set(KEY_LAST, time.time_ns())
        await pipe.execute()


async def noop_body() -> None:
    await record_done(time.time_ns())


async def sleep_body() -> None:
    started = time.time_ns()
    await asyncio.sleep(SLEEP_S)
    await record_done(started)


async def probe_body(reference_ns: int) -> None:
    """Record how long after ``reference_ns`` (enqueue time, or due time) this started."""
    lag = time.time_ns() - reference_ns
    await client().rpush(KEY_LATENCY, lag)


# --- adapter --------------------------------------------------------------------------


class Adapter:
    """What a system under test provides to the shared drivers."""

    #: shown in the JSON output; e.g. "pipeline (enqueue_many)" or "asyncio.gather".
    batch_method: str = "asyncio.gather of single enqueues"
    #: None when delayed tasks are supported, else why not.
    delayed_unsupported: str | None = None

    async def open(self) -> None:
        """Connect the producer."""

    async def close(self) -> None:
        """Disconnect the producer."""

    async def enqueue(self, task: str, *args: int) -> None:
        """Enqueue one call of ``task`` and wait until it is published."""
        raise NotImplementedError

    async def enqueue_batch(self, task: str, args: Sequence[tuple[int, ...]]) -> None:
        """Enqueue several calls with the library's batch API (default: gather)."""
        await asyncio.gather(*(self.enqueue(task, *a) for a in args))

    async def enqueue_delayed(self, task: str, delay_s: float) -> int:
        """Enqueue ``task(due_ns)`` to run ``delay_s`` from now; return the due time (ns)."""
        raise NotImplementedError

    async def run_worker(self) -> None:
        """Run the worker (concurrency :data:`CONCURRENCY`) until cancelled."""
        raise NotImplementedError


# --- producer workloads ---------------------------------------------------------------


async def _enqueue_rates(adapter: Adapter, n: int) -> dict[str, Any]:
    for _ in range(WARMUP_ENQUEUES):
        await adapter.enqueue(NOOP)
    start = time.perf_counter()
    for _ in range(n):
        await adapter.enqueue(NOOP)
    single = n / (time.perf_counter() - start)
    batch = [()] * BATCH_SIZE
    await adapter.enqueue_batch(NOOP, batch)
    start = time.perf_counter()
    for _ in range(n // BATCH_SIZE):
        await adapter.enqueue_batch(NOOP, batch)
    batched = (n // BATCH_SIZE) * BATCH_SIZE / (time.perf_counter() - start)
    return {
        "enqueue_single_per_s": single,
        "enqueue_batch_per_s": batched,
        "batch_method": adapter.batch_method,
    }


async def _prefill(adapter: Adapter, task: str, n: int) -> dict[str, Any]:
    r = client()
    await r.delete(KEY_DONE, KEY_FIRST, KEY_LAST)
    for offset in range(0, n, PREFILL_CHUNK):
        await adapter.enqueue_batch(task, [()] * min(PREFILL_CHUNK, n - offset))
    return {"prefilled": n}


async def _await_drain(n: int, timeout_s: float) -> dict[str, Any]:
    r = client()
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = int(await r.get(KEY_DONE) or 0)
        if done >= n:
            break
        await asyncio.sleep(0.005)
    else:
        return {"error": f"drain timed out after {timeout_s:.0f}s with {done}/{n} done"}
    first, last = (int(v) for v in await r.mget(KEY_FIRST, KEY_LAST))
    seconds = (last - first) / 1e9
    return {"drained": done, "seconds": seconds, "per_s": done / seconds}


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def pct(p: float) -> float:
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] / 1e6

    return {
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": ordered[-1] / 1e6,
        "samples": len(ordered),
    }


async def _pickup(adapter: Adapter, n: int, timeout_s: float) -> dict[str, Any]:
    r = client()
    await r.delete(KEY_LATENCY)
    samples: list[int] = []
    for i in range(WARMUP_PICKUPS + n):
        await adapter.enqueue(PROBE, time.time_ns())
        popped = await r.blpop([KEY_LATENCY], timeout=timeout_s)
        if popped is None:
            return {"error": f"pickup sample {i} not seen within {timeout_s:.0f}s"}
        if i >= WARMUP_PICKUPS:
            samples.append(int(popped[1]))
    return _percentiles(samples)


async def _delayed(adapter: Adapter, n: int, timeout_s: float) -> dict[str, Any]:
    if adapter.delayed_unsupported:
        return {"unsupported": adapter.delayed_unsupported}
    r = client()
    await r.delete(KEY_LATENCY)
    for i in range(n):  # delays spread over 1-2 s, all in flight at once
        await adapter.enqueue_delayed(PROBE, 1.0 + i / n)
    samples: list[int] = []
    for i in range(n):
        popped = await r.blpop([KEY_LATENCY], timeout=timeout_s)
        if popped is None:
            return {"error": f"delayed task {i} not seen within {timeout_s:.0f}s"}
        samples.append(int(popped[1]))
    stats = _percentiles(samples)
    stats["mean_ms"] = sum(samples) / len(samples) / 1e6
    stats["min_ms"] = min(samples) / 1e6
    return stats


async def _produce(adapter: Adapter, workload: str, n: int, timeout_s: float) -> dict[str, Any]:
    await adapter.open()
    try:
        if workload == "enqueue":
            return await _enqueue_rates(adapter, n)
        if workload == "prefill-noop":
            return await _prefill(adapter, NOOP, n)
        if workload == "prefill-sleep":
            return await _prefill(adapter, SLEEP, n)
        if workload == "await-drain":
            return await _await_drain(n, timeout_s)
        if workload == "pickup":
            return await _pickup(adapter, n, timeout_s)
        if workload == "delayed":
            return await _delayed(adapter, n, timeout_s)
        raise SystemExit(f"unknown workload {workload!r}")
    finally:
        await adapter.close()
        await client().aclose()


def main(adapter: Adapter, argv: Sequence[str] | None = None) -> None:
    """The CLI of one system's bench script (see the module docstring)."""
    import argparse  # here: a worker that imports the task bodies never loads it

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker")
    produce = sub.add_parser("produce")
    produce.add_argument("workload")
    produce.add_argument("--n", type=int, required=True)
    produce.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.command == "worker":
        asyncio.run(adapter.run_worker())
        return
    result = asyncio.run(_produce(adapter, args.workload, args.n, args.timeout))
    sys.stdout.write(json.dumps(result) + "\n")


def stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker process still running, wait for each (30 s), SIGKILL the rest."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
