"""``rediq top`` on a standard 80x24 terminal: full headers (compact ones at narrow widths,
less important columns dropped before anything is cut), and a workers panel whose count of
active tasks agrees with the queues' (both read from the queues' leases in one frame)."""

from __future__ import annotations

import asyncio

import pytest
from rich.console import Console

from rediq_core.broker import TaskError, TaskRecord, TaskState
from rediq_core.cli.top_cmd import Snapshot, render
from rediq_core.inspection import MinuteCounts, QueueOverview, WorkerStatus

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(90)

NOW_MS = 1_790_000_000_000


def _snapshot() -> Snapshot:
    queues = [
        QueueOverview(
            name=name,
            paused=name == "emails",
            pending=1234,
            scheduled=12,
            active=3,
            dead=7,
            oldest_pending_age_s=42.0,
            totals={"enqueued": 123456, "succeeded": 120000, "failed": 7, "retried": 31},
            minutes=tuple(MinuteCounts(NOW_MS - i * 60_000, succeeded=i) for i in range(15)),
        )
        for name in ("default", "emails", "reports-nightly")
    ]
    workers = [
        WorkerStatus(
            id=f"{n:032x}",
            name=f"worker-build-host-{4000 + n}",
            host="build-host",
            pid=4000 + n,
            queues=("default", "emails", "reports-nightly"),
            concurrency=10,
            running=3,
            processed=98765,
            failed=7,
            heartbeat_age_s=2.5,
        )
        for n in range(2)
    ]
    failures = [
        TaskRecord(
            id=f"{n:032x}",
            queue="reports-nightly",
            state=TaskState.FAILED,
            name="build_monthly_report",
            finished_at_ms=NOW_MS,
            error=TaskError("ValueError", "the report has no rows for this month " * 3, ""),
        )
        for n in range(2)
    ]
    return Snapshot(queues, workers, failures, NOW_MS / 1000)


def _screen(width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    console.print(render(_snapshot(), "redis://127.0.0.1:6379/0 ns=rediq"))
    return console.export_text()


def _headers(screen: str) -> set[str]:
    """The header cells of every table (rich draws header rows between ``┃``)."""
    return {
        cell.strip()
        for line in screen.splitlines()
        if line.startswith("┃")
        for cell in line.strip("┃").split("┃")
    }


@pytest.mark.parametrize("width", [80, 100])
def test_narrow_terminals_show_whole_headers_and_names(width: int) -> None:
    screen = _screen(width)
    assert max(len(line) for line in screen.splitlines()) <= width, screen
    headers = _headers(screen)
    assert not [h for h in headers if "…" in h], f"a header was cut at width {width}:\n{screen}"
    needed = {"queue", "state", "pending", "active", "dead", "name", "heartbeat"}
    assert needed <= headers, f"missing {needed - headers} at width {width}:\n{screen}"
    for name in ("reports-nightly", "worker-build-host-4001", "build_monthly_report"):
        assert name in screen, f"{name!r} is not shown whole:\n{screen}"


def test_a_wide_terminal_shows_every_column() -> None:
    screen = _screen(220)
    for header in ("scheduled", "oldest pending", "enqueued", "succeeded", "retried", "host:pid"):
        assert header in screen, screen


APP = """
import redis.asyncio as redis_asyncio

gate = redis_asyncio.from_url(os.environ["REDIQ_REDIS_URL"])

@app.task(task_queue="held")
async def held():
    out("STARTED")
    while await gate.blpop(os.environ["REDIQ_TEST_NAMESPACE"] + ":gate", timeout=1) is None:
        pass  # short blocking reads: the client's socket timeout is 5 s
    return "released"
"""


async def test_workers_running_agrees_with_queue_active(harness: Harness) -> None:
    m = harness.write_app(APP)
    worker = harness.start(
        "--queue-name", "held", "--skip-default-queue", "--worker-task-concurrency", "2"
    )
    handle = await m.held().enqueue()
    await asyncio.to_thread(worker.wait_for, "^STARTED$")

    doc = (await cli(harness, "top", "--json")).json()
    [queue], [shown] = doc["queues"], doc["workers"]
    assert queue["active"] == 1, doc
    assert (shown["active"], shown["concurrency"]) == (1, 2), doc
    text = (await cli(harness, "top")).out
    assert "1/2" in text, text

    await m.gate.rpush(f"{harness.namespace}:gate", "go")
    assert await handle.result(timeout=20) == "released"

    async def settled() -> bool:
        doc = (await cli(harness, "top", "--json")).json()
        return doc["queues"][0]["active"] == 0 and doc["workers"][0]["active"] == 0

    await eventually(settled, "queue active and worker running to drop to 0 together")
    await m.gate.aclose()


def test_every_overview_row_has_a_cell_per_column() -> None:
    from rediq_core.cli.render import OVERVIEW_COLUMNS, overview_table

    table = overview_table(_snapshot().queues)
    assert {len(row) for row in table.rows} == {len(OVERVIEW_COLUMNS)}
