"""Dashboard queue pages against ``rediq dashboard`` subprocesses and a real Redis: a queue
never seen (a typo in the address) is 404 for pages and actions alike and cannot be
paused into existence; a queue with pending tasks and no live consumer is marked."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.control.conftest import eventually

from .conftest import Harness, start_dashboard
from .test_dashboard_security import enqueue_one, token_of

QUEUE_ACTIONS = ["pause", "resume", "purge", "dead/requeue", "dead/delete"]


async def test_a_queue_never_seen_is_not_found_and_cannot_be_paused(harness: Harness) -> None:
    await enqueue_one(harness)
    base = start_dashboard(harness)
    control = harness.modules[0].app.control
    async with httpx.AsyncClient(base_url=base) as client:
        token = await token_of(client, "/queues/inbox")
        for page in ("/queues/inbxo", "/queues/inbxo/dead"):
            shown = await client.get(page)
            assert shown.status_code == 404, page
            assert "Pause" not in shown.text and "Purge" not in shown.text, page
            assert "inbxo" in shown.text
        for action in QUEUE_ACTIONS:
            refused = await client.post(
                f"/queues/inbxo/{action}", data={"csrf_token": token, "confirm": "inbxo"}
            )
            assert refused.status_code == 404, action
        assert (await client.get("/queues/inbox")).status_code == 200
    assert "inbxo" not in await control.queues()
    assert not (await control.queue("inbxo")).paused


def row_of(page: str, queue: str) -> str:
    found = re.search(rf"<tr>\s*<td><a href=\"[^\"]*/queues/{queue}\">.*?</tr>", page, re.S)
    assert found, f"no row of {queue} in {page[-3000:]}"
    return found.group(0)


async def test_a_queue_that_no_live_worker_consumes_is_marked(harness: Harness) -> None:
    await enqueue_one(harness)  # to "inbox"; no worker consumes it
    base = start_dashboard(harness)
    control = harness.modules[0].app.control
    async with httpx.AsyncClient(base_url=base) as client:
        assert "no consumer" in row_of((await client.get("/")).text, "inbox")
        assert "no consumer" in (await client.get("/queues/inbox")).text

        await control.pause("inbox")  # keeps the task pending while a worker consumes
        harness.start("--queue-name", "inbox")

        async def consumed() -> bool:
            return (await control.queue("inbox")).consumers == 1

        await eventually(consumed, "the worker to register as a consumer of inbox")
        assert "no consumer" not in row_of((await client.get("/")).text, "inbox")
        assert "no consumer" not in (await client.get("/queues/inbox")).text


async def test_an_empty_queue_can_be_forgotten_from_its_page(harness: Harness) -> None:
    await enqueue_one(harness)
    base = start_dashboard(harness)
    control = harness.modules[0].app.control
    async with httpx.AsyncClient(base_url=base) as client:
        token = await token_of(client, "/queues/inbox")
        assert "Forget" not in (await client.get("/queues/inbox")).text  # it holds a task
        kept = await client.post("/queues/inbox/forget", data={"csrf_token": token})
        assert kept.status_code == 303 and "not+forgotten" in kept.headers["location"]
        assert "inbox" in await control.queues()

        await control.purge("inbox")
        assert "Forget" in (await client.get("/queues/inbox")).text
        done = await client.post("/queues/inbox/forget", data={"csrf_token": token})
        assert done.status_code == 303 and done.headers["location"].startswith("/?notice=")
        assert "inbox" not in await control.queues()
        assert (await client.get("/queues/inbox")).status_code == 404


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_a_sharded_queue_is_one_row_and_one_page(harness: Harness) -> None:
    """The dashboard (without the app: from the broker alone) shows a sharded queue as one
    row with its shards' sums, and its page lists the tasks of every shard."""
    tasks = harness.write_app(
        "app.queue('mail', shards=3)\n\n@app.task(task_queue='mail')\nasync def note(n):\n    pass\n"
    )
    handles = await tasks.app.enqueue_many([tasks.note(n) for n in range(9)])
    assert len({h.queue for h in handles}) == 3
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        overview = (await client.get("/")).text
        assert "mail#" not in overview
        assert re.search(r"<td[^>]*>9</td>", row_of(overview, "mail")), row_of(overview, "mail")
        page = (await client.get("/queues/mail")).text
        assert all(h.id in page for h in handles)
