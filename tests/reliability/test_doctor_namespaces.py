"""``rediq doctor``'s workers check looks where the workers are: the app's namespace with
``--app``; without one the default namespace, naming the live workers it finds in others."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rediq_redis.testing import RedisServer

from ..worker.conftest import CLI, Harness

pytestmark = pytest.mark.timeout(90)


def doctor_workers(harness: Harness, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in harness.env.items() if k not in ("REDIQ_NAMESPACE", "REDIQ_APP")}
    done = subprocess.run(
        [*CLI, "doctor", "--json", *args],
        cwd=harness.dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    found: dict[str, Any] = checks["workers"]
    return found


@pytest.fixture
async def harness(tmp_path: Path, rediq_redis_server_factory: Callable[..., RedisServer]) -> Any:
    server = rediq_redis_server_factory()
    h = Harness(tmp_path, server.url(), "myapp")
    h.write_app("")
    try:
        yield h
    finally:
        await h.close()


async def test_with_app_the_apps_namespace_is_checked(harness: Harness) -> None:
    harness.start()
    check = doctor_workers(harness, "--app", "tasks:app", "--redis-url", harness.url)
    assert check["status"] == "ok", check
    assert check["detail"].startswith("1 live worker in namespace 'myapp'"), check


async def test_without_app_the_workers_of_other_namespaces_are_named(harness: Harness) -> None:
    harness.start()
    harness.start()
    check = doctor_workers(harness, "--redis-url", harness.url)
    assert check["detail"] == (
        "no live worker in namespace 'rediq'; 2 live workers in namespace 'myapp'"
    ), check
    assert "--namespace myapp" in check["advice"], check
    assert check["status"] == "info", check


async def test_without_any_worker_nothing_else_is_named(harness: Harness) -> None:
    check = doctor_workers(harness, "--redis-url", harness.url)
    assert check["detail"] == "no live worker in namespace 'rediq'", check
