"""Control tests: real ``rediq`` subprocesses (workers and control commands) against a
throwaway redis-server. ``harness`` comes from tests/worker/conftest.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.worker.conftest import CLI, Harness, harness  # noqa: F401 - fixture re-export

__all__ = ["Done", "cli", "eventually"]


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def cli(
    h: Harness,
    *args: str,
    app: bool = False,
    env: dict[str, str] | None = None,
    target: bool = True,
) -> Done:
    """Run ``rediq ARGS`` in a subprocess (stdout is a pipe, not a terminal), naming the
    broker by URL and namespace, or by ``--app tasks:app`` with ``app=True``."""
    named = (
        (["--app", "tasks:app"] if app else ["--redis-url", h.url, "--namespace", h.namespace])
        if target
        else []
    )
    environment = {**h.env, **(env or {})}
    if not target:
        del environment["REDIQ_REDIS_URL"]
    done = await asyncio.to_thread(
        subprocess.run,
        [*CLI, *args, *named],
        cwd=h.dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Done(done.returncode, done.stdout, done.stderr)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0
) -> None:
    """Wait (bounded) until ``check()`` is true; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.05)  # re-check interval of a bounded wait
