"""``rediq history QUEUE`` and ``rediq scaling QUEUE`` as subprocesses against a real
worker and redis-server: the table and the --json document, and bad input as a one-line
error."""

from __future__ import annotations

import pytest

from .conftest import Harness, cli

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="work")
async def nap():
    await asyncio.sleep(0.02)
"""


async def test_history_and_scaling_commands(harness: Harness) -> None:
    m = harness.write_app(APP)
    handles = [await m.nap().enqueue() for _ in range(3)]
    harness.start("--queue-name", "work")
    for handle in handles:
        await handle.result(timeout=10)

    doc = (await cli(harness, "history", "work", "--json")).json()
    assert doc["queue"] == "work" and doc["step_ms"] == 60_000 and len(doc["points"]) == 61
    assert sum(p["enqueued"] for p in doc["points"]) == 3
    assert sum(p["succeeded"] for p in doc["points"]) == 3
    ran = [p for p in doc["points"] if p["runs"]]
    assert sum(p["runs"] for p in ran) == 3 and all(p["mean_run_s"] >= 0.02 for p in ran)
    weeks = (await cli(harness, "history", "work", "--span", "14d", "--json")).json()
    assert weeks["step_ms"] == 3_600_000 and sum(p["succeeded"] for p in weeks["points"]) == 3
    table = await cli(harness, "history", "work", "--span", "2h", "--step", "30m")
    assert table.code == 0 and "per 30 min" in table.out and "succeeded" in table.out

    signal = (await cli(harness, "scaling", "work", "--json")).json()
    assert signal["queue"] == "work" and signal["desired_workers"] in (0, 1)
    assert signal["concurrency"] == 100 and signal["consumers"] == 1, signal
    assert len(signal["wait_histogram"]) == 10 and signal["wait_window_s"] == 300, signal
    table = await cli(harness, "scaling", "work", "--target-drain-s", "10")
    assert table.code == 0 and "desired workers" in table.out and "(10s)" in table.out
    assert "starts by wait" in table.out and "wait p50 / p95" in table.out, table.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "work", "--span", "2d", "--step", "5m"], "step of whole hours"),
        (["history", "work", "--span", "a week"], "--span: cannot read the span"),
        (["history", "wrok"], "unknown queue 'wrok'"),
        (["scaling", "wrok"], "unknown queue 'wrok'"),
    ],
)
async def test_bad_input_is_one_line(harness: Harness, args: list[str], message: str) -> None:
    m = harness.write_app(APP)
    await m.nap().enqueue()
    done = await cli(harness, *args)
    assert done.code != 0 and done.out == "", done
    assert done.err.startswith("error: ") and done.err.count("\n") == 1, done.err
    assert message in done.err, done.err
