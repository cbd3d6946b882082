"""One command for the whole comparison: ``python benchmarks/run.py [--quick]``.

Per system under test (rediq, arq, saq, streaq, taskiq) it starts one throwaway
``redis-server`` on a free loopback port, runs the workloads of ``common.py`` through that
system's bench script (producer and worker in separate processes), reads the worker's
peak RSS, kills everything, and finally prints one side-by-side table (``report.py``).
Peers run in their own virtualenv (``benchmarks/.venv-peers``, created on first use).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from rediq_redis.testing.redis_server import RedisServer  # noqa: E402

PEERS_VENV = HERE / ".venv-peers"
#: rediq as a user installs it for production (``pip install 'rediq[hiredis]'``, editable
#: so that it runs this checkout), without the development extras of ``.venv``: their
#: optional integrations (the OpenTelemetry SDK that redis-py loads when present, the
#: Prometheus and OpenTelemetry plugins) would add memory and per-task work no peer pays.
REDIQ_VENV = HERE / ".venv-rediq"
REDIQ_EXTRAS = "hiredis"
#: Versions that install together on Python 3.11: arq caps redis<6, which holds
#: taskiq-redis at 1.0.x, and that needs taskiq<0.13 (taskiq.compat.model_dump).
PEER_PINS = (
    "arq==0.28.0",
    "saq==0.26.4",
    "streaq==7.2.0",
    "taskiq==0.12.6",
    "taskiq-redis==1.0.9",
)
PEER_DISTS = ("arq", "saq", "streaq", "taskiq", "taskiq-redis", "redis", "hiredis")
SYSTEMS = ("rediq", "arq", "saq", "streaq", "taskiq")


@dataclass(frozen=True)
class Sizes:
    enqueue: int
    drain_noop: int
    drain_sleep: int
    pickup: int
    delayed: int


FULL = Sizes(enqueue=5000, drain_noop=10_000, drain_sleep=2000, pickup=200, delayed=20)
QUICK = Sizes(enqueue=1000, drain_noop=2000, drain_sleep=500, pickup=50, delayed=10)


# --- environments ---------------------------------------------------------------------


def _ensure_venv(venv: Path, install: list[str], marker_text: str) -> Path:
    """Create (or reuse) ``venv`` with ``pip install *install``; the marker file records
    what was installed, so a changed pin or pyproject reinstalls."""
    python = venv / "bin" / "python"
    marker = venv / "bench-install.txt"
    if python.exists() and marker.exists() and marker.read_text() == marker_text:
        return python
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *install],
        check=True,
    )
    marker.write_text(marker_text)
    return python


def ensure_peers_venv() -> Path:
    """The peers virtualenv with the pinned peer libraries."""
    return _ensure_venv(PEERS_VENV, list(PEER_PINS), "\n".join(PEER_PINS))


def ensure_rediq_venv() -> Path:
    """The rediq virtualenv: this checkout with the hiredis extra only."""
    spec = f"{HERE.parent}[{REDIQ_EXTRAS}]"
    pyproject = (HERE.parent / "pyproject.toml").read_text()
    return _ensure_venv(REDIQ_VENV, ["-e", spec], f"-e {spec}\n{pyproject}")


def versions(python: str, dists: tuple[str, ...]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: out[d] = 'absent'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([python, "-c", code, *dists], capture_output=True, text=True)
    return dict(json.loads(done.stdout)) if done.returncode == 0 else {}


# --- processes ------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        if current not in found:
            found.append(current)
            stack.extend(_children(current))
    return found


def tree_hwm_kib(pid: int) -> int:
    """Sum of VmHWM (peak resident set) over a process and its descendants."""
    total = 0
    for current in _tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (``/proc/<pid>/stat``)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def redis_cpu_s(url: str) -> float:
    """CPU seconds the redis-server has used (``INFO cpu``: user + system)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_commands(url: str) -> dict[str, int]:
    """How many times the redis-server ran each command (``INFO commandstats``: a script's
    own calls (``redis.call``) are counted under their commands too)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def per_task(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    """Commands per task between two :func:`redis_commands` snapshots."""
    found = {name: (count - before.get(name, 0)) / n for name, count in after.items()}
    return {name: per for name, per in sorted(found.items()) if per > 0}


class Worker:
    """A worker process in its own session, so the whole tree can be killed."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> int:
        """Kill the worker tree; return its peak RSS in KiB (read just before)."""
        hwm = tree_hwm_kib(self.process.pid) if self.process.poll() is None else 0
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # stragglers of the session
            os.killpg(self.process.pid, signal.SIGKILL)
        self.handle.close()
        return hwm


@dataclass
class System:
    name: str
    python: str
    script: Path
    worker_argv: list[str]


def produce(
    system: System,
    env: dict[str, str],
    workload: str,
    n: int,
    timeout_s: float = 120.0,
    wall_s: float = 300.0,
) -> dict[str, Any]:
    """Run one producer workload; ``timeout_s`` bounds each wait inside it (a drain, one
    sample), ``wall_s`` the whole producer process."""
    argv = [
        system.python,
        str(system.script),
        "produce",
        workload,
        "--n",
        str(n),
        "--timeout",
        str(timeout_s),
    ]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=wall_s)
    if done.returncode != 0:
        raise RuntimeError(f"{system.name} {workload} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if "error" in result:
        raise RuntimeError(f"{system.name} {workload}: {result['error']}")
    return result


def flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


def bench_system(system: System, sizes: Sizes, logs: Path) -> dict[str, Any]:
    server = RedisServer().start()
    workers: list[Worker] = []
    out: dict[str, Any] = {}
    try:
        url = server.url()
        env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)
        log = logs / f"{system.name}-worker.log"

        def start_worker() -> Worker:
            argv = [url if arg == "{url}" else arg for arg in system.worker_argv]
            worker = Worker(argv, env, log)
            workers.append(worker)
            return worker

        step(system.name, "enqueue rates")
        out["enqueue"] = produce(system, env, "enqueue", sizes.enqueue)
        flush(url)

        rss = 0
        for label, workload, n in (
            ("drain_noop", "prefill-noop", sizes.drain_noop),
            ("drain_sleep", "prefill-sleep", sizes.drain_sleep),
        ):
            step(system.name, f"{label}: prefill {n}, then start the worker")
            before_prefill = redis_cpu_s(url)
            commands_before_prefill = redis_commands(url)
            produce(system, env, workload, n)
            before_drain = redis_cpu_s(url)
            commands_before_drain = redis_commands(url)
            worker = start_worker()
            out[label] = produce(system, env, "await-drain", n)
            worker.check_alive()
            if label == "drain_noop":
                out["redis_cpu_us"] = {
                    "enqueue": (before_drain - before_prefill) / n * 1e6,
                    "drain": (redis_cpu_s(url) - before_drain) / n * 1e6,
                }
                out["redis_commands_per_task"] = {
                    "enqueue": per_task(commands_before_prefill, commands_before_drain, n),
                    "drain": per_task(commands_before_drain, redis_commands(url), n),
                }
                out["worker_cpu_us"] = tree_cpu_s(worker.process.pid) / n * 1e6
                rss = max(rss, worker.stop())
                flush(url)
        step(system.name, "pickup latency (idle worker)")
        out["pickup"] = produce(system, env, "pickup", sizes.pickup, timeout_s=30, wall_s=600)
        step(system.name, "delayed-task lateness")
        out["delayed"] = produce(system, env, "delayed", sizes.delayed, timeout_s=30)
        workers[-1].check_alive()
        out["rss_kib"] = max(rss, workers[-1].stop())
    except Exception as exc:  # one system failing must not lose the others' columns
        out["error"] = str(exc)
        if workers:
            out["worker_log_tail"] = workers[-1].tail()
        print(f"  !! {system.name}: {exc}", file=sys.stderr)
    finally:
        for worker in workers:
            worker.stop()
        server.close()
    return out


def redis_server_version() -> str:
    binary = os.environ.get("REDIQ_REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return next((t[2:] for t in out.split() if t.startswith("v=")), "?")


def step(name: str, what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {what}", file=sys.stderr, flush=True)


def rediq_worker_argv(processes: int = 1, python: str = sys.executable) -> list[str]:
    exe = shutil.which("rediq", path=str(Path(python).parent)) or "rediq"
    return [
        exe,
        "worker",
        "benchmarks.rediq_app:app",
        "--redis-url",
        "{url}",
        "--worker-task-concurrency",
        "100",
        "--log-level",
        "warning",
        *(["--processes", str(processes)] if processes > 1 else []),
    ]


def build_systems(
    names: list[str], peers_python: str | None, rediq_python: str | None, rediq_processes: int = 1
) -> list[System]:
    systems = []
    for name in names:
        if name == "rediq":
            assert rediq_python is not None
            script = HERE / "rediq_bench.py"
            systems.append(
                System(name, rediq_python, script, rediq_worker_argv(rediq_processes, rediq_python))
            )
        else:
            assert peers_python is not None
            script = HERE / "peers" / f"{name}_bench.py"
            systems.append(
                System(name, peers_python, script, [peers_python, str(script), "worker"])
            )
    return systems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated subset of {','.join(SYSTEMS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=HERE / "results" / "latest.json",
        help="where to write the raw results",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=HERE / "results" / "latest.md",
        help="where to write the table",
    )
    parser.add_argument(
        "--rediq-processes",
        type=int,
        default=1,
        help="run the rediq worker with --processes N (N worker processes)",
    )
    parser.add_argument(
        "--plugin-overhead",
        action="store_true",
        help="only measure the rediq drain rate with the observability plugins off and on"
        " (benchmarks/overhead.py)",
    )
    args = parser.parse_args()
    if args.plugin_overhead:
        from benchmarks import overhead

        overhead.main(args.quick, ["prometheus", "otel"])
        return
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = set(names) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else FULL
    peers_python = str(ensure_peers_venv()) if set(names) - {"rediq"} else None
    rediq_python = str(ensure_rediq_venv()) if "rediq" in names else None

    meta: dict[str, Any] = {
        "sizes": sizes.__dict__,
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "redis_server": redis_server_version(),
        "versions": {
            "rediq": versions(rediq_python or sys.executable, ("rediq", "redis", "hiredis"))
        },
    }
    if peers_python:
        meta["versions"]["peers"] = versions(peers_python, PEER_DISTS)
    results: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rediq-bench-") as tmp:
        for system in build_systems(names, peers_python, rediq_python, args.rediq_processes):
            results[system.name] = bench_system(system, sizes, Path(tmp))
    meta["wall_s"] = round(time.monotonic() - started, 1)

    table = report.render(results, meta)
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
