"""Run the README tutorial end to end: ``python examples/run_tutorial.py``.

Starts a throwaway redis-server on a free port, a worker with the tutorial's options, the
producer (which enqueues tasks and prints their results), then stops the worker with
SIGINT and checks that it exits 0. Needs ``redis-server`` on PATH.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from rediq_redis.testing import RedisServer

HERE = Path(__file__).resolve().parent
RUN_CLI = [sys.executable, "-c", "from rediq_core.cli import main; main()"]


def worker_command(log_file: Path) -> list[str]:
    """The tutorial's command line (``rediq mytasks:app ...``)."""
    return [
        *RUN_CLI,
        "mytasks:app",
        "--queue-name",
        "a",
        "--queue-name",
        "b",
        "--skip-default-queue",
        "--worker-name",
        "worker123",
        "--worker-queue-size",
        "200",
        "--worker-task-concurrency",
        "100",
        "--executor-pool-name",
        "process",
        "--executor-pool-size",
        "32",
        "--log-level",
        "info",
        "--log-file",
        str(log_file),
    ]


def main() -> int:
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "1.log"
        env = {
            **os.environ,
            "REDIQ_REDIS_URL": server.url(),
            "PYTHONUNBUFFERED": "1",
            "REDIQ_BACKOFF_BASE_MS": "50",
            "REDIQ_SIGNING_KEY": secrets.token_hex(32),
        }
        print(f"$ redis-server on {server.url()}\n$ rediq mytasks:app ... (worker)", flush=True)
        worker = subprocess.Popen(worker_command(log_file), cwd=HERE, env=env)
        try:
            print("$ python producer.py", flush=True)
            produced = subprocess.run(
                [sys.executable, "producer.py", "0.2"], cwd=HERE, env=env, timeout=120
            )
            worker.send_signal(signal.SIGINT)
            status = worker.wait(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        print(f"\n--- worker log ({log_file.name}) ---\n{log_file.read_text()}", flush=True)
    ok = produced.returncode == 0 and status == 0
    print(
        f"tutorial {'finished' if ok else 'FAILED'}: producer exited {produced.returncode},"
        f" worker exited {status}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
