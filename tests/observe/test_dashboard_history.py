"""The queue page's history charts (server-rendered SVG with axes, times and a legend,
for each span) and the autoscaling JSON endpoint KEDA reads, against a ``rediq
dashboard`` subprocess, a worker and a real Redis."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.control.conftest import eventually

from .conftest import Harness, start_dashboard

APP = """
@app.task(task_queue="inbox")
async def work(n):
    await asyncio.sleep(0.02)
    return n
"""


def figure(page: str, chart_id: str) -> str:
    found = re.search(rf'<figure class="history-chart" id="{chart_id}">.*?</figure>', page, re.S)
    assert found, f"no chart {chart_id} in {page[-3000:]}"
    return found.group(0)


async def test_the_queue_page_charts_its_history(harness: Harness) -> None:
    m: Any = harness.write_app(APP)
    for n in range(5):
        await m.work(n).enqueue()
    harness.start("--queue-name", "inbox")

    async def all_ran() -> bool:
        return (await m.app.control.queue("inbox")).totals["succeeded"] == 5

    await eventually(all_ran, "the five tasks to succeed")
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get("/queues/inbox")).text
        throughput = figure(page, "throughput")
        for legend in ("enqueued", "succeeded", "failed (dead-lettered)", "retried"):
            assert f"<title>{legend}</title>" in throughput and f">{legend} (peak" in throughput
        peak = re.search(r">enqueued \(peak (\d+)\)<", throughput)  # per minute (two, if
        assert peak and 1 <= int(peak.group(1)) <= 5, throughput  # a minute turned between)
        times = re.findall(r'class="x-label"[^>]*>(\d\d:\d\d)<', throughput)
        assert len(times) >= 5, throughput  # a time every 10 minutes of the hour
        values = re.findall(r'class="y-label"[^>]*>([\d.,]+)<', throughput)
        assert values[0] == "0" and len(values) == 5, values
        assert "<polyline points=" in throughput
        run_time = figure(page, "run-time")
        assert "<title>mean run time</title>" in run_time and "(seconds;" in run_time
        mean = re.search(r">mean run time \(peak ([\d.]+)\)<", run_time)
        assert mean and float(mean.group(1)) >= 0.02, run_time  # the task sleeps 20 ms
        assert 'class="current">1h<' in page

        for span, label in (("24h", r"\d\d:\d\d"), ("14d", r"\d\d-\d\d")):
            shown = await client.get(f"/queues/inbox?span={span}")
            assert shown.status_code == 200, shown.text[-2000:]
            assert f'class="current">{span}<' in shown.text
            chart = figure(shown.text, "throughput")
            assert re.search(rf'class="x-label"[^>]*>{label}<', chart), (span, chart)
            assert ">enqueued (peak" in chart
        assert (await client.get("/queues/inbox?span=3y")).status_code == 200  # the default


async def test_the_scaling_endpoint_answers_and_rises_after_a_burst(harness: Harness) -> None:
    """``/api/scaling/{queue}`` is what KEDA's metrics-api scaler reads: a queue with
    nothing to do wants no worker; after a burst of tasks nobody runs yet, it wants one at
    least, and its backlog and oldest age show; a queue never seen is 404."""
    m: Any = harness.write_app(APP)
    await m.app.control.pause("inbox")  # known, empty: nothing runs the burst below
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        idle = (await client.get("/api/scaling/inbox")).json()
        assert (idle["queue"], idle["desired_workers"], idle["pending"]) == ("inbox", 0, 0)
        assert set(idle) >= {
            "queue",
            "desired_workers",
            "oldest_age_s",
            "arrival_per_s",
            "mean_run_s",
            "pending",
            "wait_histogram",
            "wait_p50_s",
            "wait_p95_s",
            "wait_window_s",
        }
        # no worker has started a task of the queue: every bucket empty, no quantile
        assert [b["count"] for b in idle["wait_histogram"]] == [0] * 10, idle
        assert idle["wait_histogram"][-1]["le_s"] is None and idle["wait_p50_s"] is None
        for n in range(50):
            await m.work(n).enqueue()
        burst = (await client.get("/api/scaling/inbox")).json()
        assert burst["desired_workers"] >= 1 > idle["desired_workers"], burst
        assert burst["pending"] == 50 and burst["oldest_age_s"] is not None
        assert burst["concurrency"] >= 1 and burst["target_drain_s"] == 60.0
        tuned = await client.get("/api/scaling/inbox?target_drain_s=5&window_minutes=2")
        assert tuned.json()["target_drain_s"] == 5.0 and tuned.json()["window_s"] == 120
        refused = await client.get("/api/scaling/inbox?window_minutes=0")
        assert refused.status_code == 400 and "window_minutes" in refused.json()["error"]
        missing = await client.get("/api/scaling/inbxo")
        assert missing.status_code == 404 and "inbxo" in missing.json()["error"]
