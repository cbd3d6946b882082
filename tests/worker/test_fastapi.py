"""The FastAPI example (examples/fastapi_service.py) against a real worker process:
enqueue in one request, await the result by id in another, through httpx; and an app
used from a second event loop without close() reconnects instead of failing."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from .conftest import Harness

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("REDIQ_REDIS_URL", harness.url)
    monkeypatch.setenv("REDIQ_NAMESPACE", harness.namespace)
    spec = importlib.util.spec_from_file_location(
        f"fastapi_service_{harness.namespace}", EXAMPLES / "fastapi_service.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_enqueue_in_one_request_and_await_by_id_in_another(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = load_example(harness, monkeypatch)
    harness.start(
        "--queue-name",
        "reports",
        "--skip-default-queue",
        app="fastapi_service:app",
        cwd=EXAMPLES,
        env={"REDIQ_NAMESPACE": harness.namespace},
    )
    api = service.api
    transport = httpx.ASGITransport(app=api)
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        started = await client.post("/reports", params={"customer": 7})
        assert started.status_code == 200, started.text
        task_id = started.json()["task_id"]
        done = await client.get(f"/reports/{task_id}", params={"wait": 10})
        assert done.json() == {"state": "succeeded", "result": {"customer": 7, "rows": 70}}
        missing = await client.get("/reports/no-such-task")
        assert missing.status_code == 404
    assert service.app._broker is None  # the lifespan closed the connections


async def test_the_app_reconnects_from_a_new_event_loop(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = load_example(harness, monkeypatch)
    harness.start(
        "--queue-name",
        "reports",
        app="fastapi_service:app",
        cwd=EXAMPLES,
        env={"REDIQ_NAMESPACE": harness.namespace},
    )

    async def round_trip(customer: int) -> object:
        handle = await service.build_report(customer).enqueue()
        return await handle.result(timeout=10)

    def two_loops() -> list[object]:  # each asyncio.run() is a new loop; no close() between
        return [asyncio.run(round_trip(1)), asyncio.run(round_trip(2))]

    results = await asyncio.to_thread(two_loops)
    assert results == [{"customer": 1, "rows": 10}, {"customer": 2, "rows": 20}]
    assert await round_trip(3) == {"customer": 3, "rows": 30}  # and back in this loop
    await service.app.close()
