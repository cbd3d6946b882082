"""What the observability plugins cost: ``python benchmarks/run.py --plugin-overhead``.

The rediq drain benchmark (``N`` pre-enqueued ``noop`` tasks, then one worker with
concurrency 100; rate = N / (last finish - first start)) runs alternately with the
plugins blocked (``off``) and with one plugin on, ``rounds`` times each, against one
throwaway redis-server, so both see the same machine state. ``prometheus`` runs with
``--metrics-port`` (the /metrics server up, counted and observed per task); ``otel`` runs
with the OpenTelemetry API only (no SDK configured: no-op spans, context still injected
and extracted). The median rate of each mode and its cost against ``off`` are printed.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.run import System, Worker, flush, produce, rediq_worker_argv, step
from rediq_redis.testing.redis_server import RedisServer

__all__ = ["MODES", "measure", "render"]

HERE = Path(__file__).resolve().parent
#: mode -> (plugins blocked, extra worker options)
MODES: dict[str, tuple[str, list[str]]] = {
    "off": ("prometheus,otel", []),
    "prometheus": ("otel", ["--metrics-port", "0", "--metrics-host", "127.0.0.1"]),
    "otel": ("prometheus", []),
}


def _drain(system: System, url: str, mode: str, n: int, logs: Path) -> float:
    blocked, options = MODES[mode]
    env = {
        **os.environ,
        "BENCH_REDIS_URL": url,
        "PYTHONUNBUFFERED": "1",
        "REDIQ_DISABLE_PLUGINS": blocked,
    }
    env.pop("PYTHONPATH", None)
    produce(system, env, "prefill-noop", n)
    argv = [url if arg == "{url}" else arg for arg in system.worker_argv] + options
    worker = Worker(argv, env, logs / f"overhead-{mode}.log")
    try:
        result = produce(system, env, "await-drain", n)
        worker.check_alive()
    finally:
        worker.stop()
        flush(url)
    return float(result["per_s"])


def measure(n: int, rounds: int, modes: list[str]) -> dict[str, list[float]]:
    """Drain rates per mode, the modes interleaved round by round."""
    system = System("rediq", sys.executable, HERE / "rediq_bench.py", rediq_worker_argv())
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="rediq-overhead-") as tmp:
            for round_no in range(1, rounds + 1):
                for mode in modes:
                    step("rediq", f"plugin overhead round {round_no}/{rounds}: {mode}, {n} noop")
                    rates[mode].append(_drain(system, server.url(), mode, n, Path(tmp)))
    finally:
        server.close()
    return rates


def render(rates: dict[str, list[float]], n: int) -> str:
    base = statistics.median(rates["off"])
    lines = [
        f"Drain rate of {n:,} noop tasks, one worker (concurrency 100), median of"
        f" {len(rates['off'])} interleaved rounds:",
        "",
        "| plugins | median tasks/s | runs | cost vs off |",
        "|---|---|---|---|",
    ]
    for mode, values in rates.items():
        median = statistics.median(values)
        cost = "-" if mode == "off" else f"{(1 - median / base) * 100:+.1f} %"
        runs = ", ".join(f"{v:,.0f}" for v in values)
        lines.append(f"| {mode} | {median:,.0f} | {runs} | {cost} |")
    return "\n".join(lines)


def hook_cost_us(plugin: str, n: int = 20_000) -> float:
    """CPU time of one task's hooks (start, attempt end, success; for otel also the
    producer's two), in microseconds, called directly in this process: the part of the
    cost that does not depend on the machine's load."""
    import importlib
    import time

    from rediq_core.info import TaskInfo

    hooks = importlib.import_module(f"rediq_{plugin}.hooks")
    task = TaskInfo(
        task_id="0" * 32,
        task_name="noop",
        task_queue="default",
        task_priority=0,
        task_retries=0,
        task_timeout=None,
        enqueued_at_ms=int(time.time() * 1000),
        headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
    )
    started = time.perf_counter()
    for _ in range(n):
        hooks.rediq_before_task_start(task)
        hooks.rediq_after_task_attempt(task, 0.001, None)
        if plugin == "prometheus":
            hooks.rediq_after_task_success(task, None)
    return (time.perf_counter() - started) / n * 1e6


def main(quick: bool, modes: list[str]) -> dict[str, Any]:
    n, rounds = (2_000, 3) if quick else (10_000, 5)
    rates = measure(n, rounds, ["off", *[m for m in modes if m != "off"]])
    print(render(rates, n))
    per_task_us = 1e6 / statistics.median(rates["off"])
    print(
        f"\nHook CPU time per task, measured in-process (a task costs {per_task_us:,.0f} µs"
        " of worker time at the median rate above):\n"
    )
    print("| plugin | µs per task | share of a task's time |\n|---|---|---|")
    costs = {}
    for mode in modes:
        costs[mode] = hook_cost_us(mode)
        print(f"| {mode} | {costs[mode]:.1f} | {costs[mode] / per_task_us * 100:.1f} % |")
    return {"n": n, "rounds": rounds, "rates": rates, "hook_cost_us": costs}
