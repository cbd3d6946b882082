"""A worker that cannot serve its metrics does not start: a busy ``--metrics-port`` is a
one-line error and a non-zero exit before any task is consumed (docs/observability.md)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess

import pytest

from rediq_core.broker import TaskState
from rediq_redis.testing import RedisServer
from rediq_redis.testing.redis_server import free_port

from .conftest import CLI, Harness

pytestmark = pytest.mark.timeout(120)

BODY = """
@app.task
async def work(i):
    return i
"""


def _run_worker(harness: Harness, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``rediq worker`` to its end; fail clearly (and kill its whole process group,
    supervised children included) if it runs on."""
    proc = subprocess.Popen(
        [*CLI, "worker", "tasks:app", *options],
        cwd=harness.dir,
        env=harness.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        raise AssertionError(
            f"the worker ran on with its metrics port busy;\nstdout:\n{out}\nstderr:\n{err}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_busy_metrics_port_fails_the_start_before_any_task(
    harness: Harness, processes: str
) -> None:
    m = harness.write_app(BODY)
    handle = await m.work(1).enqueue()
    with socket.create_server(("127.0.0.1", 0)) as busy:  # listening: the port is in use
        port = busy.getsockname()[1]
        done = await asyncio.to_thread(
            _run_worker,
            harness,
            "--metrics-port",
            str(port),
            "--metrics-host",
            "127.0.0.1",
            "--processes",
            processes,
        )
    assert done.returncode != 0, done
    assert re.fullmatch(rf"error: --metrics-port {port} is in use \(.+\)\n", done.stderr), (
        done.stderr
    )
    assert await handle.state() is TaskState.PENDING, "a task was consumed"
    assert await m.app.control.workers() == [], "the worker registered itself"


async def test_a_metrics_port_taken_while_waiting_for_redis_fails_the_start(
    harness: Harness,
) -> None:
    """Free when the command line checked it, taken by the time the worker could serve it
    (another worker started while Redis was down): the worker still refuses to run."""
    server = RedisServer(port=free_port())
    harness.url = server.url()
    harness.env["REDIQ_REDIS_URL"] = server.url()
    m = harness.write_app(BODY)
    port = free_port()
    worker = harness.start("--metrics-port", str(port), "--metrics-host", "127.0.0.1", ready=False)
    try:
        worker.wait_for("lost the connection to redis://", timeout=30)  # waiting for Redis
        with socket.create_server(("127.0.0.1", port)):
            server.start()
            assert worker.wait_exit(30) != 0
        # It never registered (its first heartbeat comes after the metrics server, and its
        # first fetch after that).
        assert await m.app.control.workers() == [], "the worker registered itself"
    finally:
        await harness.close()
        server.close()
    errors = worker.matching(rf"--metrics-port {port} is in use \(.+\)")
    assert len(errors) == 1, worker.output
    assert "Traceback" not in worker.output, worker.output
