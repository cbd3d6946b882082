"""Worker fixtures: real ``rediq worker`` processes against a throwaway redis-server.

``harness.write_app(source)`` writes an app module into ``tmp_path`` and imports it in the
test process too (to enqueue and await results); ``harness.start(*options)`` runs
``rediq worker tasks:app`` in a subprocess, waits for its readiness line and always stops
it at teardown. The app module reads its namespace from ``REDIQ_TEST_NAMESPACE`` and its
URL from ``REDIQ_REDIS_URL``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rediq import Rediq

HEADER = """\
import asyncio, functools, os, sys, time
from rediq import *
from rediq_core.errors import *

app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
            namespace=os.environ["REDIQ_TEST_NAMESPACE"],
            serializer_name=os.environ.get("REDIQ_TEST_SERIALIZER", "json"))

def out(*parts):
    print(*parts, flush=True)
"""

CLI = [sys.executable, "-c", "from rediq_core.cli import main; main()"]


class WorkerProcess:
    """A ``rediq`` subprocess whose combined output is collected line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: stop() ends --processes children
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<EOF>")
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        regex = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines if regex.search(line)]

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        """Block until ``count`` output lines match ``pattern``; fail clearly otherwise."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                if "<EOF>" in self.lines[-1:] or time.monotonic() >= deadline:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(
                        f"waited {timeout} s for {count} line(s) matching {pattern!r},"
                        f" saw {len(found)}; worker output (tail):\n{tail}"
                    )
                self._changed.wait(max(0.0, deadline - time.monotonic()))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # the worker logs its coroutines' stacks
            with contextlib.suppress(AssertionError):
                self.wait_for("SIGUSR1: ", timeout=3)
            raise AssertionError(
                f"worker did not exit within {timeout} s; output:\n{self.output[-8000:]}"
            ) from None
        self._reader.join(5)
        return status

    def stop(self) -> None:
        """SIGKILL the worker and whatever it started (``--processes`` children, which a
        killed supervisor would otherwise leave running)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)


class Harness:
    def __init__(self, tmp_path: Path, url: str, namespace: str) -> None:
        self.dir = tmp_path
        self.url = url
        self.namespace = namespace
        self.env = {
            **os.environ,
            "REDIQ_REDIS_URL": url,
            "REDIQ_TEST_NAMESPACE": namespace,
            "PYTHONUNBUFFERED": "1",
            "REDIQ_BACKOFF_BASE_MS": "20",
            "REDIQ_LOG_FORMAT": "plain",
        }
        self.workers: list[WorkerProcess] = []
        self.modules: list[ModuleType] = []

    def write_app(self, body: str, module: str = "tasks", header: str = HEADER) -> Any:
        """Write ``header + body`` as ``<module>.py`` and import it here as well."""
        path = self.dir / f"{module}.py"
        path.write_text(header + body)
        return self.import_module(path)

    def import_module(self, path: Path) -> Any:
        saved = {k: os.environ.get(k) for k in ("REDIQ_REDIS_URL", "REDIQ_TEST_NAMESPACE")}
        os.environ.update(REDIQ_REDIS_URL=self.url, REDIQ_TEST_NAMESPACE=self.namespace)
        try:
            spec = importlib.util.spec_from_file_location(f"_rq_{self.namespace}_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        module.app.redis_url = self.url
        self.modules.append(module)
        return module

    def start(
        self,
        *options: str,
        app: str = "tasks:app",
        ready: bool = True,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        worker = WorkerProcess(
            ["worker", app, "--redis-url", self.url, *options],
            cwd or self.dir,
            {**self.env, **(env or {})},
        )
        self.workers.append(worker)
        if ready:
            worker.wait_for(r"ready: consuming", timeout=30)
        return worker

    async def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        for module in self.modules:
            await module.app.close()


@pytest.fixture
async def harness(
    tmp_path: Path, rediq_redis_url: str, rediq_namespace: str
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, rediq_redis_url, rediq_namespace)
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture(params=["redis", "memory"])
async def app(request: pytest.FixtureRequest, rediq_namespace: str) -> AsyncIterator[Rediq]:
    """An app on a real redis-server, then on ``memory://`` (in-process workers' tests);
    closed at the end."""
    if request.param == "redis":
        url = request.getfixturevalue("rediq_redis_url")
    else:
        url = f"memory://{uuid.uuid4().hex}"
    app = Rediq(redis_url=url, namespace=rediq_namespace)
    try:
        yield app
    finally:
        await app.close()
