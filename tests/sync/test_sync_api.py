"""The blocking API (docs/sync.md) on a real redis-server and on ``memory://``: a threaded
WSGI app whose requests enqueue and wait, every blocking twin, the refusal inside a
running event loop, closing, interpreter exit and fork."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from rediq import (
    CancelOutcome,
    RediqError,
    SyncCallInEventLoopError,
    TaskFailedError,
    TaskNotFoundError,
    TaskState,
    chain,
)
from rediq.testing import run_worker

from .conftest import SyncApp

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 32
REQUESTS_PER_CLIENT = 4


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """The stdlib WSGI server, one thread per request (as a threaded Flask or Django
    development server, or gunicorn's gthread worker)."""

    daemon_threads = True
    request_queue_size = CLIENTS * 2


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def add_view(made: SyncApp) -> Callable[..., Iterable[bytes]]:
    def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = parse_qs(environ["QUERY_STRING"])
        handle = made.add(int(query["a"][0]), int(query["b"][0])).enqueue_sync()
        result = handle.result_sync(timeout=60)
        body = json.dumps({"id": handle.id, "result": result}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return view


def sync_loop_threads(made: SyncApp) -> list[threading.Thread]:
    """The threads of the app's sync loop (named after its unique namespace)."""
    name = f"rediq-sync-loop {made.app.namespace}"
    return [t for t in threading.enumerate() if t.name == name]


async def test_a_threaded_wsgi_app_enqueues_and_waits_in_every_request(sync_app: SyncApp) -> None:
    server = make_server(
        "127.0.0.1", 0, add_view(sync_app), ThreadingWSGIServer, handler_class=QuietHandler
    )
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.server_port}/add"
    answers: list[tuple[int, dict[str, Any]]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for r in range(REQUESTS_PER_CLIENT):
            a, b = n, 1000 * r
            try:
                with urllib.request.urlopen(f"{url}?a={a}&b={b}", timeout=60) as response:
                    answer = json.loads(response.read())
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                answers.append((a + b, answer))

    def all_clients() -> None:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(80)

    try:
        async with run_worker(sync_app.app, queues=("default",), task_concurrency=16):
            await asyncio.to_thread(all_clients)
            assert len(sync_loop_threads(sync_app)) == 1, "every request thread shares one loop"
    finally:
        server.shutdown()
        server.server_close()
    assert not errors, f"{len(errors)} request(s) failed, first: {errors[0]!r}"
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    assert all(expected == answer["result"] for expected, answer in answers)
    assert len({answer["id"] for _, answer in answers}) == len(answers)


async def test_every_blocking_twin(sync_app: SyncApp) -> None:
    app, add, boom, nap = sync_app.app, sync_app.add, sync_app.boom, sync_app.nap

    def body() -> None:
        handle = add(1, 2).enqueue_sync()
        assert handle.accepted and handle.result_sync(timeout=10) == 3
        assert app.result_sync(handle.id, timeout=10) == 3
        assert app.handle_sync(handle.id).result_sync(timeout=10) == 3
        assert handle.state_sync() is TaskState.SUCCEEDED
        info = handle.info_sync()
        assert info is not None and info.state is TaskState.SUCCEEDED
        again = add(2, 2).options(task_id=f"fixed-{handle.id}", priority=3).enqueue_sync()
        assert again.id == f"fixed-{handle.id}" and again.result_sync(timeout=10) == 4
        handles = app.enqueue_many_sync([add(i, i) for i in range(5)])
        assert [h.result_sync(timeout=10) for h in handles] == [0, 2, 4, 6, 8]
        with pytest.raises(TaskFailedError, match="ValueError: boom"):
            boom().enqueue_sync().result_sync(timeout=10)
        with pytest.raises(TaskNotFoundError):
            app.handle_sync("no-such-task")
        workflow = chain(add(1, 1), add.s(10)).enqueue_sync()
        assert workflow.result_sync(timeout=10) == 12
        assert app.workflow_sync(workflow.id).result_sync(timeout=10) == 12
        assert [s.state for s in workflow.status_sync()] == [TaskState.SUCCEEDED] * 2
        waiting = nap(0).enqueue_sync()  # no worker consumes "naps"
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s"):
            waiting.result_sync(timeout=0.2)
        assert waiting.state_sync() is TaskState.PENDING
        assert waiting.cancel_sync() is CancelOutcome.CANCELLED
        assert waiting.state_sync() is TaskState.CANCELLED
        cancelled = chain(nap(0), nap(0)).enqueue_sync()
        cancelled.cancel_sync()
        assert {s.state for s in cancelled.status_sync()} == {TaskState.CANCELLED}

    async with run_worker(app, queues=("default",)):
        await asyncio.to_thread(body)


async def test_a_blocking_call_inside_a_running_event_loop_is_refused(sync_app: SyncApp) -> None:
    app, add = sync_app.app, sync_app.add
    handle = await add(1, 2).enqueue()
    workflow = await chain(add(1, 1), add.s(1)).enqueue()
    calls: list[Callable[[], object]] = [
        lambda: add(1, 2).enqueue_sync(),
        lambda: add(1, 2).options(priority=1).enqueue_sync(),
        lambda: handle.result_sync(timeout=1),
        handle.info_sync,
        handle.state_sync,
        handle.cancel_sync,
        lambda: app.result_sync(handle.id, timeout=1),
        lambda: app.handle_sync(handle.id),
        lambda: app.enqueue_many_sync([add(1, 1)]),
        lambda: app.workflow_sync(workflow.id),
        lambda: chain(add(1, 1)).enqueue_sync(),
        lambda: workflow.result_sync(timeout=1),
        workflow.status_sync,
        workflow.cancel_sync,
        app.close_sync,
    ]
    for call in calls:
        with pytest.raises(SyncCallInEventLoopError, match=r"in async code, await \w+\(\) instead"):
            call()
    assert issubclass(SyncCallInEventLoopError, RediqError)
    assert not app.sync_runner.running, "a refused call starts nothing"
    overview = await app.control.queue("default")
    assert overview.pending + overview.waiting == 3, "nothing more was enqueued"

    async def on_the_sync_loop() -> object:
        return add(1, 2).enqueue_sync()  # would wait for its own loop forever

    with pytest.raises(SyncCallInEventLoopError):
        await asyncio.to_thread(app.sync_runner.call, on_the_sync_loop)


async def test_close_stops_the_loop_and_the_next_call_starts_another(sync_app: SyncApp) -> None:
    app, add = sync_app.app, sync_app.add

    def enqueue_and_close() -> None:
        add(1, 2).enqueue_sync()
        assert app.sync_runner.running and len(sync_loop_threads(sync_app)) == 1
        app.close_sync()
        assert not app.sync_runner.running and not sync_loop_threads(sync_app)
        add(1, 2).enqueue_sync()  # a fresh loop and broker

    await asyncio.to_thread(enqueue_and_close)
    assert app.sync_runner.running
    await app.close()
    assert not app.sync_runner.running and not sync_loop_threads(sync_app)
    assert (await app.control.queue("default")).pending == 2


async def test_a_call_waiting_when_the_app_closes_ends_cancelled(sync_app: SyncApp) -> None:
    app = sync_app.app

    async def calls_on_the_loop() -> int:
        return len(asyncio.all_tasks()) - 1  # without this one

    def wait_then_close() -> BaseException | None:
        handle = sync_app.nap(0).enqueue_sync()  # no worker: it stays pending
        outcome: list[BaseException | None] = []

        def wait() -> None:
            try:
                handle.result_sync(timeout=60)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 10
        while app.sync_runner.call(calls_on_the_loop) < 1:
            assert time.monotonic() < deadline, "the waiting call never reached the loop"
            time.sleep(0.01)
        app.close_sync()
        waiter.join(10)
        assert not waiter.is_alive(), "the waiting call outlived the closed loop"
        return outcome[0]

    assert isinstance(await asyncio.to_thread(wait_then_close), concurrent.futures.CancelledError)


def run_script(source: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-c", source, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


EXIT_WITHOUT_CLOSE = """
import sys
from tests.sync.conftest import make_app
made = make_app(sys.argv[1], sys.argv[2])
handles = [made.add(i, i).enqueue_sync() for i in range(3)]
print(len(handles))
"""


async def test_the_loop_closes_at_interpreter_exit(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    """A script that never closes the app exits cleanly (development mode shows any
    unclosed connection, transport or loop on stderr)."""
    done = await asyncio.to_thread(run_script, EXIT_WITHOUT_CLOSE, rediq_redis_url, rediq_namespace)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "3", "")


FORK = """
import os, sys, warnings
warnings.filterwarnings("ignore", message=".*multi-threaded, use of fork", category=DeprecationWarning)
from tests.sync.conftest import make_app
made = make_app(sys.argv[1], sys.argv[2])
add = made.add
assert add(1, 1).enqueue_sync().result_sync(timeout=30) == 2  # the parent's loop runs
children = []
for n in range(3):
    pid = os.fork()
    if pid == 0:  # a pre-forked server's worker: its first call starts its own loop
        code = 0
        try:
            assert add(n, 100).enqueue_sync().result_sync(timeout=30) == n + 100
            assert made.app.sync_runner.running
        except BaseException as exc:
            print("child", n, "failed:", repr(exc), flush=True)
            code = 1
        sys.exit(code)
    children.append(pid)
assert add(2, 2).enqueue_sync().result_sync(timeout=30) == 4  # the parent's loop still runs
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
print("children exited", codes)
"""


async def test_a_forked_child_starts_its_own_loop(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    from .conftest import make_app

    made = make_app(rediq_redis_url, rediq_namespace)
    try:
        async with run_worker(made.app, queues=("default",)):
            done = await asyncio.to_thread(run_script, FORK, rediq_redis_url, rediq_namespace)
    finally:
        await made.app.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "children exited [0, 0, 0]", done.stdout + done.stderr
    assert done.stderr == ""
