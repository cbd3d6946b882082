"""The operator's pages of the dashboard, against ``rediq dashboard`` subprocesses, real
workers and a real Redis: search (an id jumps to its task, names and arguments are
found across queues, page by page with a bounded read per page), the schedules page
(pause, resume, trigger now), the workers page (the tasks each runs, stop), cancel per
row with the arguments shown in the rows, and every failed attempt's error on the task
page."""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

import httpx
import pytest

from rediq import TaskState
from tests.control.conftest import eventually

from .conftest import Harness, start_dashboard
from .test_dashboard_security import token_of

BODY = """
FLAG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fail.flag")

@app.task(task_name="invoice", task_queue="billing")
async def invoice(customer, amount=0):
    return amount

@app.task(task_name="mail", task_queue="inbox")
async def mail(to, subject=""):
    return to

@app.task(task_name="sleepy", task_queue="slow")
async def sleepy(label):
    out("SLEEPY STARTED", label)
    await asyncio.sleep(60)

@app.task(task_name="flaky", task_queue="slow",
          retry=RetryPolicy(retries=5, backoff="fixed", base=0))
async def flaky():
    n = int(open(FLAG).read()) if os.path.exists(FLAG) else 0
    if n < 3:
        open(FLAG, "w").write(str(n + 1))
        raise RuntimeError(f"attempt {n + 1} broke <on purpose>")
    return "fine"

@app.cron("0 0 1 1 *", name="yearly")
@app.task(task_name="report", task_queue="slow")
async def report():
    return "reported"
"""


def ids_in(page: str) -> set[str]:
    return set(re.findall(r'href="/tasks/([0-9a-f]{32})\?queue=', page))


async def every_match(client: httpx.AsyncClient, text: str) -> tuple[set[str], int]:
    """The ids a search finds, following its "search further" links; and its pages."""
    found: set[str] = set()
    page = await client.get("/search", params={"q": text})
    pages = 1
    while True:
        assert page.status_code == 200, page.text[-2000:]
        assert "search-summary" in page.text
        found |= ids_in(page.text)
        further = re.search(r'id="search-further" href="([^"]+)"', page.text)
        if not further:
            assert "every queue was searched" in page.text
            return found, pages
        pages += 1
        assert pages < 20, "the search never ended"
        page = await client.get(html.unescape(further.group(1)))


async def test_search_finds_ids_names_and_arguments_across_queues_page_by_page(
    harness: Harness,
) -> None:
    tasks = harness.write_app(BODY)
    bills = [await tasks.invoice(f"acme-{n}", amount=n).enqueue() for n in range(7)]
    mails = [await tasks.mail("ops@acme.example", subject="hi").enqueue() for _ in range(5)]
    other = await tasks.mail("someone@else.example").enqueue()
    base = start_dashboard(harness, "--search-scan", "4")
    async with httpx.AsyncClient(base_url=base) as client:
        jump = await client.get("/search", params={"q": bills[3].hex()})
        assert jump.status_code == 303
        assert jump.headers["location"] == f"/tasks/{bills[3].hex()}?queue=billing"

        found, pages = await every_match(client, "ACME")  # any case
        assert found == {h.hex() for h in bills + mails}  # invoice args and mail args
        assert other.hex() not in found
        assert pages >= 4  # 13 tasks, at most 4 read per page
        assert (await every_match(client, "invoice"))[0] == {h.hex() for h in bills}
        assert (await every_match(client, "acme-5"))[0] == {bills[5].hex()}
        assert (await every_match(client, "nomatchatall"))[0] == set()
        bad = await client.get("/search", params={"q": "x", "cursor": "nonsense"})
        assert bad.status_code == 400 and "search further" in bad.text
        assert 'name="q"' in (await client.get("/workers")).text  # the box is on every page


async def test_schedules_page_pauses_resumes_and_triggers(harness: Harness) -> None:
    tasks = harness.write_app(BODY)
    harness.start("--queue-name", "slow")
    cron = tasks.app.cron_control

    async def stored() -> bool:
        return any(s.name == "yearly" for s in await cron.list())

    await eventually(stored, "the worker to store its schedule")
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        shown = await client.get("/schedules")
        assert shown.status_code == 200 and "yearly" in shown.text and "0 0 1 1 *" in shown.text
        token = await token_of(client, "/schedules")
        paused = await client.post(
            "/schedules/pause", data={"csrf_token": token, "schedule": "yearly"}
        )
        assert paused.status_code == 303 and "paused" in paused.headers["location"]
        assert [s.paused for s in await cron.list()] == [True]
        assert "Resume" in (await client.get("/schedules")).text
        await client.post("/schedules/resume", data={"csrf_token": token, "schedule": "yearly"})
        assert [s.paused for s in await cron.list()] == [False]

        fired = await client.post(
            "/schedules/trigger", data={"csrf_token": token, "schedule": "yearly"}
        )
        assert fired.status_code == 303
        found = re.match(r"/tasks/([^?]+)\?notice=", fired.headers["location"])
        assert found, fired.headers["location"]
        handle = await tasks.app.handle(unquote(found.group(1)))
        assert await handle.result(timeout=20) == "reported"
        unknown = await client.post(
            "/schedules/pause", data={"csrf_token": token, "schedule": "nope"}
        )
        assert "nothing+paused" in unknown.headers["location"]


async def test_workers_page_shows_running_tasks_and_stops_a_worker(harness: Harness) -> None:
    tasks = harness.write_app(BODY)
    worker = harness.start("--queue-name", "slow", "--worker-name", "stoppable")
    handle = await tasks.sleepy("<i>label</i>").enqueue()
    worker.wait_for("SLEEPY STARTED")
    control = tasks.app.control

    async def running() -> bool:
        return any(handle.hex() in w.running_ids for w in await control.workers())

    await eventually(running, "the worker to report the running task")
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get("/workers")).text
        assert f'href="/tasks/{handle.hex()}?queue=slow"' in page and ">sleepy</a>" in page
        assert "&lt;i&gt;label&lt;/i&gt;" in page and "<i>label" not in page
        [status] = await control.workers()
        token = await token_of(client, "/workers")
        stopped = await client.post(f"/workers/{status.id}/stop", data={"csrf_token": token})
        assert stopped.status_code == 303 and "asked+worker" in stopped.headers["location"]
        await control.cancel(handle.hex())  # the graceful stop waits for it otherwise
        assert worker.wait_exit(30) == 0
        gone = await client.post("/workers/no-such-worker/stop", data={"csrf_token": token})
        assert "no+registered+worker" in gone.headers["location"]


async def test_rows_show_arguments_and_cancel_one_task(harness: Harness) -> None:
    tasks = harness.write_app(BODY)
    keep = await tasks.mail("<b>keep@x</b>", subject="s" * 200).enqueue()
    drop = await tasks.mail("drop@x").enqueue()
    base = start_dashboard(harness)
    control = tasks.app.control
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get("/queues/inbox")).text
        assert "&#34;&lt;b&gt;keep@x&lt;/b&gt;&#34;, subject=&#34;sss" in page  # escaped, truncated
        assert "s" * 200 not in page.split('title="')[0]
        assert page.count('class="cancel-row"') == 2
        token = await token_of(client, "/queues/inbox")
        done = await client.post(
            "/queues/inbox/cancel",
            data={"csrf_token": token, "task_id": drop.hex(), "state": "pending"},
        )
        assert done.status_code == 303
        assert done.headers["location"].startswith("/queues/inbox?state=pending&notice=task+")
        assert (await control.task(drop.hex())).state is TaskState.CANCELLED
        assert (await control.task(keep.hex())).state is TaskState.PENDING
        nothing = await client.post("/queues/inbox/cancel", data={"csrf_token": token})
        assert "nothing+selected" in nothing.headers["location"]
        dead_tab = (await client.get("/queues/inbox?state=failed")).text
        assert 'class="cancel-row"' not in dead_tab


async def test_the_task_page_shows_every_failed_attempt(harness: Harness) -> None:
    tasks = harness.write_app(BODY)
    harness.start("--queue-name", "slow")
    handle = await tasks.flaky().enqueue()
    assert await handle.result(timeout=30) == "fine"
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get(f"/tasks/{handle.hex()}")).text
    assert 'id="attempts"' in page
    for n in (1, 2, 3):
        assert f"attempt {n} broke &lt;on purpose&gt;" in page
    assert "<on purpose>" not in page
    record = await tasks.app.control.task(handle.hex())
    assert [a.number for a in record.failed_attempts] == [1, 2, 3]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
