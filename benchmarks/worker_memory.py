"""The memory of an idle ``rediq worker``: ``python benchmarks/worker_memory.py``.

Starts one throwaway ``redis-server``, runs the benchmark app's worker
(``rediq worker benchmarks.rediq_app:app``, the harness's command line) with the
interpreter running this script, waits until the worker has registered itself, and
prints its ``VmHWM`` (peak resident set). With ``--importtime FILE`` it then runs the
same worker once more under ``python -X importtime -m rediq_core.cli`` and writes the
import profile to FILE, printing the ``--top`` slowest top-level imports. Run it with the
interpreter of the install to measure (e.g. a virtualenv with ``pip install 'rediq[all]'``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import run
from rediq_redis.testing.redis_server import RedisServer

__all__ = ["idle_worker_hwm_mib", "main", "top_imports"]

ROOT = Path(__file__).resolve().parents[1]
IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)")


def idle_worker_hwm_mib(url: str, *, importtime: Path | None = None) -> float:
    """VmHWM (over the worker's process tree) of an idle worker once it is registered;
    with ``importtime``, the worker runs under ``-X importtime`` writing there."""
    import redis

    argv = [url if arg == "{url}" else arg for arg in run.rediq_worker_argv()]
    if importtime is not None:  # the same command through the module, profiled
        argv = [sys.executable, "-X", "importtime", "-m", "rediq_core.cli", *argv[1:]]
    with open(importtime or os.devnull, "w") as stderr:
        worker = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=dict(os.environ, BENCH_REDIS_URL=url),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        probe = redis.Redis.from_url(url)
        try:
            deadline = time.monotonic() + 30
            while not probe.zcard("{rediq}:workers"):  # the measurement's own wait
                if time.monotonic() > deadline:
                    raise SystemExit("the worker did not register within 30 s")
                time.sleep(0.1)
            return run.tree_hwm_kib(worker.pid) / 1024
        finally:
            probe.close()
            worker.terminate()
            worker.wait(timeout=30)


def top_imports(profile: Path, count: int) -> list[tuple[float, str]]:
    """The ``count`` top-level imports of a ``-X importtime`` profile with the largest
    cumulative time, in ms."""
    rows = []
    for line in profile.read_text().splitlines():
        found = IMPORT_LINE.match(line)
        if found and not found[2]:
            rows.append((int(found[1]) / 1000, found[3]))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="worker starts (the least wins)")
    parser.add_argument("--importtime", type=Path, help="also write a -X importtime profile")
    parser.add_argument("--top", type=int, default=15, help="top-level imports to print")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        url = server.url()
        best = min(idle_worker_hwm_mib(url) for _ in range(args.rounds))
        print(f"idle rediq worker VmHWM: {best:.2f} MiB ({sys.executable})")
        if args.importtime is not None:
            idle_worker_hwm_mib(url, importtime=args.importtime)
            modules = sum(1 for line in args.importtime.read_text().splitlines() if "|" in line)
            print(f"{modules - 1} imports; top-level, cumulative ms:")
            for ms, name in top_imports(args.importtime, args.top):
                print(f"{ms:9.1f}  {name}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
