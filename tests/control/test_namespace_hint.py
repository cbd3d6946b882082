"""A namespace that holds nothing (a typo, usually): control commands that read it say so
on stderr, name the namespaces found on the server, and exit 1 instead of printing an
empty table."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from rediq import Rediq
from rediq_core.broker import WorkerRecord
from rediq_redis.testing import RedisServer

from .conftest import CLI, Done

pytestmark = pytest.mark.timeout(90)


def rediq(*args: str) -> Done:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=_env())
    return Done(done.returncode, done.stdout, done.stderr)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("REDIQ_")}


@pytest.fixture
async def server(rediq_redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A server of its own holding namespace ``alpha`` (a queue with a task) and ``beta``
    (only a registered worker)."""
    server = rediq_redis_server_factory()
    alpha = Rediq(redis_url=server.url(), namespace="alpha")
    beta = Rediq(redis_url=server.url(), namespace="beta")
    try:

        @alpha.task(task_queue="mails")
        async def send() -> None: ...

        await send().enqueue()
        record = WorkerRecord(id="w1", name="w", queues=("default",), heartbeat_age_s=0.0)
        await beta.get_broker().heartbeat(record, 60)
    finally:
        await alpha.close()
        await beta.close()
    return server


HINT = "namespace 'alpah' holds nothing; namespaces found: alpha, beta"


@pytest.mark.parametrize(
    "command",
    [("queues",), ("workers",), ("tasks", "mails"), ("top",), ("dead-letters", "mails")],
)
async def test_an_empty_namespace_is_named_with_the_ones_found(
    server: RedisServer, command: tuple[str, ...]
) -> None:
    done = rediq(*command, "--redis-url", server.url(), "--namespace", "alpah")
    assert done.code == 1, done
    assert done.err.strip() == f"error: {HINT}", done
    assert done.out == "", done


async def test_json_output_gets_the_same_hint(server: RedisServer) -> None:
    done = rediq("queues", "--json", "--redis-url", server.url(), "--namespace", "alpah")
    assert (done.code, done.out, done.err.strip()) == (1, "", f"error: {HINT}")


async def test_namespaces_holding_something_are_read_as_before(server: RedisServer) -> None:
    queues = rediq("queues", "--json", "--redis-url", server.url(), "--namespace", "alpha")
    assert queues.code == 0 and [q["name"] for q in queues.json()["queues"]] == ["mails"], queues
    workers = rediq("workers", "--json", "--redis-url", server.url(), "--namespace", "beta")
    assert workers.code == 0 and [w["id"] for w in workers.json()["workers"]] == ["w1"], workers


async def test_a_server_without_any_namespace_says_so(
    rediq_redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = rediq_redis_server_factory()
    done = rediq("queues", "--redis-url", server.url())
    assert done.code == 1, done
    assert done.err.strip() == "error: namespace 'rediq' holds nothing; namespaces found: none"


async def test_namespaces_are_found_on_every_master_of_a_cluster(
    rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    names = [f"{rediq_namespace}-{n}" for n in range(12)]  # their tags hash to many slots
    apps = [Rediq(redis_url=rediq_redis_cluster.url(), namespace=name) for name in names]
    try:
        for app in apps:

            @app.task
            async def step() -> None: ...

            await step().enqueue()
        found = await apps[0].get_broker().namespaces()
        assert set(names) <= set(found), found
    finally:
        for app in apps:
            await app.close()
