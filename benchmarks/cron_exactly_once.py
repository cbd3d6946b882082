"""Cron exactly-once and lateness: N workers serve an every-second schedule while some are
SIGKILLed and restarted; count runs per tick and measure lateness (task start - tick).

    .venv/bin/python benchmarks/cron_exactly_once.py                 # 5 workers, 60 s, 2 kills
    .venv/bin/python benchmarks/cron_exactly_once.py --duration 20   # shorter

It starts its own throwaway ``redis-server`` (free loopback port) and real ``rediq worker``
subprocesses, prints a JSON report and exits 1 if a tick in the window did not run
exactly once. ``tests/worker/test_cron_soak.py`` runs the same scenario as a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

APP = """\
import os, time
from rediq import Rediq, current_task_info

app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"], namespace=os.environ["REDIQ_CRON_NS"])

@app.cron("* * * * * *", name="every-second")
@app.task
async def beat() -> None:
    start = time.time_ns() // 1_000_000
    info = current_task_info()
    print(f"CRONRUN tick={info.headers['cron_tick_ms']} start={start}"
          f" deliveries={info.deliveries} id={info.task_id}", flush=True)
"""

RUN = re.compile(r"CRONRUN tick=(\d+) start=(\d+) deliveries=(\d+) id=(\S+)")
CLI = [sys.executable, "-c", "from rediq_core.cli import main; main()"]


class Worker:
    """A ``rediq worker`` subprocess whose output lines are collected by a thread."""

    def __init__(self, url: str, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [
                *CLI,
                "worker",
                "crontasks:app",
                "--redis-url",
                url,
                "--worker-task-concurrency",
                "10",
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<EOF>")
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> None:
        regex, deadline = re.compile(pattern), time.monotonic() + timeout
        with self._cond:
            while not any(regex.search(line) for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or "<EOF>" in self.lines[-1:]:
                    tail = "\n".join(self.lines[-30:])
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout} s:\n{tail}"
                    )
                self._cond.wait(left)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._thread.join(5)


@dataclass
class Report:
    workers: int
    duration_s: float
    kills: int
    window_ticks: int
    ticks_with_one_run: int
    missed_ticks: list[int] = field(default_factory=list)
    doubled_ticks: dict[str, int] = field(default_factory=dict)
    redeliveries: int = 0
    lateness_ms: dict[str, float] = field(default_factory=dict)

    @property
    def exactly_once(self) -> bool:
        return not self.missed_ticks and not self.doubled_ticks


def _percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def analyse(
    lines: list[str],
    first_tick: int,
    last_tick: int,
    *,
    workers: int,
    duration_s: float,
    kills: int,
) -> Report:
    """Tasks per tick (a second fire would be a second task id) and first deliveries per
    tick; a redelivery of a run whose worker was killed (same id, ``deliveries > 1``) is
    counted apart, and it alone shows a tick ran when its first delivery was killed before
    it printed. Lateness is each tick's earliest printed start."""
    tasks: dict[int, set[str]] = {}
    first_runs: dict[int, int] = {}
    started: dict[int, int] = {}
    redeliveries = 0
    for line in lines:
        match = RUN.search(line)
        if not match:
            continue
        tick, start, deliveries = (int(match.group(i)) for i in (1, 2, 3))
        tasks.setdefault(tick, set()).add(match.group(4))
        started[tick] = min(start, started.get(tick, start))
        if deliveries > 1:
            redeliveries += 1  # a worker was killed during this run: at-least-once delivery
        else:
            first_runs[tick] = first_runs.get(tick, 0) + 1
    window = range(first_tick, last_tick + 1, 1000)
    runs = {t: max(len(tasks[t]), first_runs.get(t, 0)) for t in tasks}
    lateness = [started[t] - t for t in window if t in started]
    return Report(
        workers=workers,
        duration_s=duration_s,
        kills=kills,
        window_ticks=len(window),
        ticks_with_one_run=sum(1 for t in window if runs.get(t) == 1),
        missed_ticks=[t for t in window if t not in runs],
        doubled_ticks={str(t): runs[t] for t in window if runs.get(t, 0) > 1},
        redeliveries=redeliveries,
        lateness_ms={
            "p50": _percentile(lateness, 0.50),
            "p99": _percentile(lateness, 0.99),
            "max": float(max(lateness)),
            "mean": round(statistics.fmean(lateness), 2),
        }
        if lateness
        else {},
    )


def run_scenario(
    url: str,
    workdir: Path,
    namespace: str,
    *,
    workers: int = 5,
    duration_s: float = 60.0,
    kills: int = 2,
) -> Report:
    """The scenario against the Redis at ``url``; every worker is stopped on return."""
    (workdir / "crontasks.py").write_text(APP)
    env = {
        **os.environ,
        "REDIQ_REDIS_URL": url,
        "REDIQ_CRON_NS": namespace,
        "PYTHONUNBUFFERED": "1",
        "REDIQ_LOG_FORMAT": "plain",
        "REDIQ_LEASE_MS": "3000",
        "REDIQ_LEASE_RENEW_MS": "1000",
    }
    every: list[Worker] = []
    try:
        live = [Worker(url, workdir, env) for _ in range(workers)]
        every.extend(live)
        for worker in live:
            worker.wait_for(r"cron: serving")
        started = time.time()
        first_tick = (math.floor(started) + 1) * 1000
        kill_at = [started + duration_s * (i + 1) / (kills + 1) for i in range(kills)]
        for index, moment in enumerate(kill_at):
            time.sleep(max(0.0, moment - time.time()))  # the soak's timeline, not a sync
            live[index].kill()
            live[index] = Worker(url, workdir, env)
            every.append(live[index])
            live[index].wait_for(r"cron: serving")
        time.sleep(max(0.0, started + duration_s - time.time()))
        last_tick = (math.floor(time.time()) - 1) * 1000
        deadline = time.monotonic() + 15
        while not any(f"tick={last_tick} " in line for w in every for line in list(w.lines)):
            if time.monotonic() > deadline:
                break  # analyse() reports the tick as missed
            time.sleep(0.05)  # bounded wait for the window's last run to be printed
    finally:
        for worker in every:
            worker.kill()
    lines = [line for worker in every for line in worker.lines]
    return analyse(
        lines, first_tick, last_tick, workers=workers, duration_s=duration_s, kills=kills
    )


def main() -> int:
    from rediq_redis.testing import RedisServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--kills", type=int, default=2)
    options = parser.parse_args()
    server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report = run_scenario(
                server.url(),
                Path(tmp),
                "cronbench",
                workers=options.workers,
                duration_s=options.duration,
                kills=options.kills,
            )
    finally:
        server.close()
    print(json.dumps({**asdict(report), "exactly_once": report.exactly_once}, indent=2))
    return 0 if report.exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
