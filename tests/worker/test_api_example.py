"""The README's FastAPI producer (examples/api.py): it publishes through the app and awaits
results through the public ``app.result`` (an unknown id is 404, a task still running
past the request's timeout is 504)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from rediq_redis.testing.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def api_example(
    rediq_redis_server_factory: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    server = rediq_redis_server_factory()  # its own server: mytasks uses the default namespace
    monkeypatch.setenv("REDIQ_REDIS_URL", server.url())
    monkeypatch.setenv("REDIQ_SIGNING_KEY", "an example key of at least 16 bytes")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for name in ("api", "mytasks"):
        sys.modules.pop(name, None)
    try:
        yield importlib.import_module("api")
    finally:
        for name in ("api", "mytasks"):
            sys.modules.pop(name, None)


async def test_the_api_example_publishes_and_awaits_through_the_app(
    api_example: ModuleType,
) -> None:
    transport = httpx.ASGITransport(app=api_example.api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            published = await client.get("/")
            assert published.status_code == 200, published.text
            task_id = published.json()["task_id"]
            # no worker runs: the task is pending, so a short wait times out
            waiting = await client.get(f"/result/{task_id}", params={"timeout": 0.2})
            assert waiting.status_code == 504, waiting.text
            unknown = await client.get("/result/no-such-task")
            assert unknown.status_code == 404, unknown.text
    finally:
        await api_example.app.close()
