"""Where the microseconds go, per task: ``python benchmarks/per_task.py``.

Runs in-process against a throwaway ``redis-server`` (hiredis when installed) and prints
two tables:

* **Enqueue path**: one ``await noop().enqueue()`` at a time, taken apart. Each step is
  timed on its own over ``N`` calls (building the call, the message, the envelope, the
  plugin hooks, the script call's keys), then the bare round trips (``PING`` and the very
  ``EVALSHA`` an enqueue sends, through redis-py), then the whole call. "Other" is what the
  whole call costs beyond the sum of the steps (coroutine and dispatch glue). The
  server's own time per script call is read from ``INFO commandstats``.
* **Worker path**: ``N`` pre-enqueued no-op tasks drained by one in-process worker
  (concurrency 100). The worker's CPU per task (``time.process_time``), then the same
  drain under ``cProfile``, bucketed by the worker's components (fetch, runner, settle,
  ...): the buckets show the shares; profiling inflates every figure about twofold, so
  read them against the unprofiled total. Redis CPU per task (``INFO cpu``) and script
  calls per task come from the server.

Nothing here is asserted by a test: it only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from rediq_core.app import Rediq
from rediq_core.broker import EnqueueOutcome, TaskState
from rediq_core.worker import Worker, WorkerConfig
from rediq_redis.testing.redis_server import RedisServer

__all__ = ["main"]


def _app(url: str) -> Rediq:
    app = Rediq(redis_url=url)

    @app.task(task_name="noop")
    async def noop() -> None:
        return None

    return app


async def per_call_us(n: int, step: Callable[[], Awaitable[Any] | Any]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        result = step()
        if asyncio.iscoroutine(result):
            await result
    return (time.perf_counter() - started) / n * 1e6


async def _commandstats(client: Redis) -> dict[str, dict[str, float]]:
    stats: dict[str, dict[str, float]] = await client.info("commandstats")
    return stats


async def _server_us(
    client: Redis, before: dict[str, dict[str, float]], command: str
) -> tuple[float, float]:
    after = await _commandstats(client)
    key = f"cmdstat_{command}"
    calls = after.get(key, {}).get("calls", 0) - before.get(key, {}).get("calls", 0)
    usec = after.get(key, {}).get("usec", 0) - before.get(key, {}).get("usec", 0)
    return calls, usec


async def enqueue_path(url: str, n: int) -> list[tuple[str, float]]:
    from rediq_redis import producer

    app = _app(url)
    noop = app.tasks["noop"]
    call = noop()
    await call.enqueue()  # connect, load scripts
    broker: Any = app.get_broker()
    session = await broker._ready()
    client: Redis = session.client
    message = app.build_message(call)
    calls = producer.enqueue_calls(session, [message])
    script = calls[0]

    outcome = EnqueueOutcome(message.id, True, TaskState.PENDING, message.result_ttl_s)

    async def hooks() -> None:
        await app.plugins.events.before_task_enqueue(message)
        await app.plugins.events.after_task_enqueue(message, outcome)

    async def bare_evalsha() -> None:
        # the same task again: a duplicate, answered from its record
        await client.evalsha(script.script.sha, len(script.keys), *script.keys, *script.args)

    rows = [
        ("build the call: `noop()` (argument check)", await per_call_us(n, noop)),
        (
            "build the message (serializer, options, id)",
            await per_call_us(n, lambda: app.build_message(call)),
        ),
        ("envelope JSON", await per_call_us(n, message.envelope)),
        ("seal (sign, size check)", await per_call_us(n, lambda: app.producer.seal(message))),
        ("plugin hooks (before + after enqueue)", await per_call_us(n, hooks)),
        (
            "script call: keys, nonce, arguments",
            await per_call_us(n, lambda: producer.enqueue_calls(session, [message])),
        ),
        ("round trip: bare `PING` (redis-py)", await per_call_us(n, client.ping)),
    ]
    await client.flushall()
    rows.append(
        ("round trip: the enqueue `EVALSHA` alone (redis-py)", await per_call_us(n, bare_evalsha))
    )
    await client.flushall()
    before = await _commandstats(client)
    whole = await per_call_us(n, lambda: noop().enqueue())
    calls_done, usec = await _server_us(client, before, "evalsha")
    parts = sum(v for name, v in rows if "PING" not in name)
    rows.append(("other (coroutines, handles, outcome)", max(0.0, whole - parts)))
    rows.append(("**whole `await noop().enqueue()`**", whole))
    rows.append(
        ("redis-server: the enqueue script, per call (commandstats)", usec / max(calls_done, 1))
    )
    await client.flushall()
    rows += await _batched(app, session, n)
    await app.close()
    return rows


async def _batched(app: Rediq, session: Any, n: int, size: int = 100) -> list[tuple[str, float]]:
    """``app.enqueue_many`` in batches of ``size``, beside the same EVALSHAs sent as a
    bare redis-py pipeline (no rediq code between the calls and the socket)."""
    from redis.asyncio import Redis as PlainRedis

    from rediq_redis import producer

    noop = app.tasks["noop"]
    plain = PlainRedis.from_url(app.redis_url)  # redis-py's own connection class
    batches = max(1, n // size)
    started = time.perf_counter()
    for _ in range(batches):
        await app.enqueue_many([noop() for _ in range(size)])
    many = batches * size / (time.perf_counter() - started)
    await plain.flushall()
    sha = session.scripts.enqueue.sha
    elapsed = 0.0
    for _ in range(batches):
        calls = producer.enqueue_calls(session, [app.build_message(noop()) for _ in range(size)])
        started = time.perf_counter()
        async with plain.pipeline(transaction=False) as pipe:
            for c in calls:
                pipe.execute_command("EVALSHA", sha, len(c.keys), *c.keys, *c.args)
            await pipe.execute()
        elapsed += time.perf_counter() - started
    await plain.flushall()
    await plain.aclose()
    return [
        (f"`app.enqueue_many`, batches of {size}: tasks/s", many),
        (
            f"bare redis-py pipeline of the same EVALSHAs, batches of {size}: tasks/s",
            batches * size / elapsed,
        ),
    ]


def _bucket(stats: pstats.Stats, n: int) -> list[tuple[str, float]]:
    """Profiled time of the worker's components, per task: a function's cumulative time,
    or (no function named) the own time of every function of a file."""
    wanted = {
        "fetch: the claim call and its reply (`leasing._claim`)": ("leasing.py", "_claim"),
        "fetch: all of it, with the waits' set-up (`leasing.fetch`)": ("leasing.py", "fetch"),
        "runner: decode, bind, task info (`_prepare`)": ("runner.py", "_prepare"),
        "runner: events (`task_event`, `attempt_ended`)": ("worker/events.py", ""),
        "runner: the attempt (task body, context, asyncio task)": ("runner.py", "_attempt"),
        "runner: result encoding, settle hand-off (`_finish`)": ("runner.py", "_finish"),
        "settle: batched script calls (`leasing.settle`)": ("leasing.py", "settle"),
        "lease table (`leases.py`, own time)": ("leases.py", ""),
        "local queue (`asyncio/queues.py`, own time)": ("asyncio/queues.py", ""),
        "event loop: callbacks and task steps (`asyncio/events.py`, own time)": (
            "asyncio/events.py",
            "",
        ),
    }
    totals: dict[str, float] = dict.fromkeys(wanted, 0.0)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, tottime, cumtime, _) in raw.items():
        for label, (file_part, func) in wanted.items():
            if not filename.endswith(file_part):
                continue
            if not func:
                totals[label] += tottime
            elif function == func:
                totals[label] = max(totals[label], cumtime)
    return [(label, total / n * 1e6) for label, total in totals.items()]


async def _drain(
    url: str, n: int, profile: cProfile.Profile | None, queue_size: int | None
) -> tuple[float, float, float, float]:
    app = _app(url)
    noop = app.tasks["noop"]
    for start in range(0, n, 500):
        await app.enqueue_many([noop() for _ in range(min(500, n - start))])
    client: Any = Redis.from_url(url)
    cpu_before = await client.info("cpu")
    stats_before = await _commandstats(client)
    sizing = {} if queue_size is None else {"queue_size": queue_size}
    config = WorkerConfig(task_concurrency=100, handle_signals=False, **sizing)
    worker = Worker(app, config)
    running = asyncio.create_task(worker.run())
    await worker.ready.wait()
    started_cpu, started = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    deadline = time.monotonic() + 600
    while await client.zcard("{rediq:default}:pending") or await client.zcard(
        "{rediq:default}:active"
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the drain did not finish within 600 s")
        await asyncio.sleep(0.05)  # the measurement's own wait, not rediq's
    if profile is not None:
        profile.disable()
    cpu_us = (time.process_time() - started_cpu) / n * 1e6
    wall = time.perf_counter() - started
    cpu_after = await client.info("cpu")
    calls, _ = await _server_us(client, stats_before, "evalsha")
    worker.request_shutdown()
    await running
    redis_cpu = sum(cpu_after[k] - cpu_before[k] for k in ("used_cpu_user", "used_cpu_sys"))
    await client.flushall()
    await client.aclose()
    return cpu_us, n / wall, redis_cpu / n * 1e6, calls / n


async def worker_path(url: str, n: int, queue_size: int | None) -> list[tuple[str, float]]:
    cpu_us, rate, redis_us, calls = await _drain(url, n, None, queue_size)
    profile = cProfile.Profile()
    profiled_cpu, _, _, _ = await _drain(url, n, profile, queue_size)
    rows = [
        ("**worker CPU per task (unprofiled)**", cpu_us),
        ("drain rate, tasks/s (unprofiled)", rate),
        ("redis-server CPU per task (`INFO cpu`)", redis_us),
        ("script calls per task (`EVALSHA`)", calls),
        (
            "worker CPU per task under the profiler (the buckets below add up to about it)",
            profiled_cpu,
        ),
    ]
    rows += _bucket(pstats.Stats(profile), n)
    return rows


def render(title: str, rows: list[tuple[str, float]]) -> str:
    lines = [f"| {title} | µs per task |", "|---|---|"]
    for name, value in rows:
        shown = f"{value:,.2f}" if "per task (`EVALSHA`)" in name else f"{value:,.1f}"
        if "tasks/s" in name:
            shown = f"{value:,.0f}"
        lines.append(f"| {name} | {shown} |")
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> None:
    server = RedisServer().start()
    try:
        url = server.url()
        if args.path in ("both", "enqueue"):
            print(render("enqueue path (one call at a time)", await enqueue_path(url, args.n)))
            print()
        if args.path in ("both", "worker"):
            print(
                render(
                    "worker path (drain of no-op tasks)",
                    await worker_path(url, args.n, args.queue_size),
                )
            )
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="calls / tasks per measurement")
    parser.add_argument("--path", choices=("both", "enqueue", "worker"), default="both")
    parser.add_argument(
        "--queue-size",
        type=int,
        default=None,
        help="the worker's prefetch (worker_queue_size; default: rediq's)",
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
