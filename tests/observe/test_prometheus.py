"""Prometheus: a real worker drains 1,000 tasks (10 of them fail, are retried once and
are dead-lettered) while /metrics is scraped; every counter and histogram count is exact."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time

from prometheus_client import REGISTRY

from rediq import chain

from .conftest import CLI, Harness, metrics_url, scrape

TASKS, FAILING = 1_000, 10
LABELS = {"task": "work", "queue": "default"}

BODY = """
@app.task(task_name="work", task_retries=1)
async def work(i):
    if i % 100 == 7:
        raise ValueError(f"task {i} fails")
    return i
"""


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_while_a_worker_drains_a_thousand_tasks(harness: Harness) -> None:
    tasks = harness.write_app(BODY)
    worker = harness.start(
        "--metrics-port", "0", "--metrics-host", "127.0.0.1", "--worker-task-concurrency", "50"
    )
    url = metrics_url(worker)
    labels = {"task": "work", "queue": "default"}
    enqueued_before = REGISTRY.get_sample_value("rediq_tasks_enqueued_total", labels) or 0.0

    control = tasks.app.control
    await control.pause("default")  # the whole backlog is in place before the drain
    for start in range(0, TASKS, 100):
        await asyncio.gather(*(tasks.work(i).enqueue() for i in range(start, start + 100)))
    enqueued = REGISTRY.get_sample_value("rediq_tasks_enqueued_total", labels)
    assert enqueued == enqueued_before + TASKS  # counted in the producer (this process)
    samples = await asyncio.to_thread(scrape, url)
    assert value(samples, "rediq_queue_tasks", queue="default", state="pending") == TASKS
    assert value(samples, "rediq_queue_paused", queue="default") == 1
    assert value(samples, "rediq_tasks_started_total", **labels) == 0
    # the autoscaling signal: a backlog wants a worker at least (no run time is known yet)
    assert value(samples, "rediq_queue_desired_workers", queue="default") >= 1
    assert ("rediq_queue_arrival_per_second", frozenset({("queue", "default")})) in samples
    await control.resume("default")

    scrapes = 0
    deadline = time.monotonic() + 60
    while True:
        samples = await asyncio.to_thread(scrape, url)
        scrapes += 1
        done = value(samples, "rediq_tasks_succeeded_total", **labels) + value(
            samples, "rediq_tasks_dead_lettered_total", **labels
        )
        if done == TASKS:
            break
        assert time.monotonic() < deadline, f"only {done} tasks settled: {worker.output[-3000:]}"
        await asyncio.sleep(0.05)
    assert scrapes > 1, "the worker finished before a scrape saw it working"

    assert value(samples, "rediq_tasks_started_total", **labels) == TASKS
    assert value(samples, "rediq_tasks_succeeded_total", **labels) == TASKS - FAILING
    assert value(samples, "rediq_tasks_retried_total", **labels) == FAILING
    assert value(samples, "rediq_tasks_failed_total", **labels) == 2 * FAILING
    assert value(samples, "rediq_tasks_dead_lettered_total", **labels) == FAILING
    assert value(samples, "rediq_tasks_cancelled_total", **labels) == 0
    assert value(samples, "rediq_tasks_running", **labels) == 0
    attempts = TASKS + FAILING
    assert value(samples, "rediq_task_run_seconds_count", **labels) == attempts
    assert value(samples, "rediq_task_run_seconds_bucket", le="+Inf", **labels) == attempts
    assert value(samples, "rediq_task_queue_wait_seconds_count", **labels) == TASKS
    assert value(samples, "rediq_task_run_seconds_sum", **labels) > 0
    # One scrape is not a snapshot: the queue depths are read from Redis before the
    # counters are collected, so the scrape that saw the last settlement counted may have
    # read the depths just before it. Every settlement is in Redis now; read them again.
    samples = await asyncio.to_thread(scrape, url)
    assert value(samples, "rediq_queue_tasks", queue="default", state="dead") == FAILING
    assert value(samples, "rediq_queue_tasks", queue="default", state="pending") == 0
    assert value(samples, "rediq_queue_paused", queue="default") == 0


BLOCK_PROMETHEUS_CLIENT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "prometheus_client":
            raise ImportError(f"{name} is blocked")
        return None
sys.meta_path.insert(0, Block())
from rediq_core.cli import main
main()
"""


def test_metrics_port_without_the_extra_is_a_clear_usage_error(harness: Harness) -> None:
    """The plugin declares its options without prometheus_client, to say what to install."""
    harness.write_app(BODY)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_PROMETHEUS_CLIENT,
            "worker",
            "tasks:app",
            "--metrics-port",
            "0",
        ],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).replace("│", " ").split())
    assert "--metrics-port needs the Prometheus plugin: pip install 'rediq[prometheus]'" in said


def test_metrics_port_of_a_blocked_plugin_is_an_unknown_option(harness: Harness) -> None:
    """A blocked plugin registers nothing, its options neither (like ``pytest -p no:X``)."""
    harness.write_app(BODY)
    done = subprocess.run(
        [*CLI, "worker", "tasks:app", "--metrics-port", "0"],
        cwd=harness.dir,
        env={**harness.env, "REDIQ_DISABLE_PLUGINS": "prometheus"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).replace("│", " ").split())
    assert "No such option '--metrics-port'" in said, said


async def test_multiprocess_mode_serves_the_sum_of_every_worker_process(
    harness: Harness,
) -> None:
    """Two worker processes share PROMETHEUS_MULTIPROC_DIR; the one serving /metrics
    reports the tasks of both."""
    tasks = harness.write_app(BODY)
    with tempfile.TemporaryDirectory() as shared:
        env = {"PROMETHEUS_MULTIPROC_DIR": shared}
        serving = harness.start(
            "--metrics-port",
            "0",
            "--metrics-host",
            "127.0.0.1",
            "--worker-name",
            "serving",
            "--log-level",
            "debug",
            env=env,
        )
        harness.start("--worker-name", "silent", "--log-level", "debug", env=env)
        url = metrics_url(serving)
        await asyncio.gather(*(tasks.work(i).enqueue() for i in range(200) if i % 100 != 7))
        labels = {"task": "work", "queue": "default"}
        deadline = time.monotonic() + 30
        while (
            value(
                samples := await asyncio.to_thread(scrape, url),
                "rediq_tasks_succeeded_total",
                **labels,
            )
            < 198
        ):
            assert time.monotonic() < deadline, "the two workers did not drain 198 tasks"
            await asyncio.sleep(0.05)
        assert value(samples, "rediq_tasks_succeeded_total", **labels) == 198
        assert value(samples, "rediq_tasks_started_total", **labels) == 198
        assert value(samples, "rediq_task_run_seconds_count", **labels) == 198
        ran = [len(w.matching(r"\] succeeded")) for w in harness.workers]  # debug lines
        assert sum(ran) == 198 and min(ran) > 0, f"tasks run per worker: {ran}"


SLEEPER = """
@app.task(task_name="sleeper")
async def sleeper():
    out("SLEEPER STARTED")
    await asyncio.sleep(60)
"""


async def test_a_cancelled_running_task_counts_as_cancelled_not_failed(
    harness: Harness,
) -> None:
    tasks = harness.write_app(SLEEPER)
    worker = harness.start("--metrics-port", "0", "--metrics-host", "127.0.0.1")
    url = metrics_url(worker)
    handle = await tasks.sleeper().enqueue()
    worker.wait_for("SLEEPER STARTED")
    labels = {"task": "sleeper", "queue": "default"}
    samples = await asyncio.to_thread(scrape, url)
    assert value(samples, "rediq_tasks_running", **labels) == 1
    assert value(samples, "rediq_queue_tasks", queue="default", state="active") == 1
    await tasks.app.control.cancel(handle.hex())
    deadline = time.monotonic() + 20
    while (
        value(
            samples := await asyncio.to_thread(scrape, url), "rediq_tasks_cancelled_total", **labels
        )
        < 1
    ):
        assert time.monotonic() < deadline, "the cancellation was not counted"
        await asyncio.sleep(0.05)
    assert value(samples, "rediq_tasks_running", **labels) == 0
    assert value(samples, "rediq_tasks_failed_total", **labels) == 0
    assert value(samples, "rediq_tasks_dead_lettered_total", **labels) == 0
    assert value(samples, "rediq_task_run_seconds_count", **labels) == 1


async def test_processes_serve_one_endpoint_with_the_sum_of_all(harness: Harness) -> None:
    """rediq worker --processes 2 --metrics-port: one /metrics, counting both processes."""
    tasks = harness.write_app(
        BODY
        + """
@app.task(task_name="pid")
async def pid():
    await asyncio.sleep(0.05)
    return os.getpid()
"""
    )
    supervisor = harness.start(
        "--processes",
        "2",
        "--metrics-port",
        "0",
        "--metrics-host",
        "127.0.0.1",
        "--worker-task-concurrency",
        "5",
        "--worker-queue-size",
        "0",
        ready=False,
    )  # 5 slots each
    supervisor.wait_for(r"ready: consuming", count=2, timeout=30)
    url = metrics_url(supervisor)
    assert len(supervisor.matching(r"serving Prometheus metrics on http://")) == 1
    handles = await asyncio.gather(*(tasks.pid().enqueue() for _ in range(100)))
    pids = {await h.result(timeout=20) for h in handles}
    labels = {"task": "pid", "queue": "default"}
    assert (
        value(await asyncio.to_thread(scrape, url), "rediq_tasks_succeeded_total", **labels) == 100
    )
    assert len(pids) == 2, pids


async def test_enqueued_workflows_are_counted_by_their_first_queue(harness: Harness) -> None:
    """The producer counts each workflow once (labelled by its first step's queue); its
    steps count as tasks."""
    tasks = harness.write_app(BODY)
    sample = ("rediq_workflows_enqueued_total", {"queue": "default"})
    before = REGISTRY.get_sample_value(*sample) or 0.0
    tasks_before = REGISTRY.get_sample_value("rediq_tasks_enqueued_total", LABELS) or 0.0
    await chain(tasks.work(1), tasks.work(2)).enqueue()
    assert REGISTRY.get_sample_value(*sample) == before + 1
    assert REGISTRY.get_sample_value("rediq_tasks_enqueued_total", LABELS) == tasks_before + 2


LIMITED_BODY = """
@app.task(task_name="hold", concurrency_limit=1, concurrency_key="tenant")
async def hold(tenant):
    await asyncio.sleep(60)
"""


async def test_the_use_of_every_limit_is_scraped(harness: Harness) -> None:
    """Running and held-back tasks per limit, and a queue's own limits."""
    tasks = harness.write_app(LIMITED_BODY)
    await tasks.app.control.set_limits("default", concurrency=10, rate="20/s")
    for _ in range(3):
        await tasks.hold("acme").enqueue()
    worker = harness.start("--metrics-port", "0", "--metrics-host", "127.0.0.1")
    url = metrics_url(worker)
    deadline = time.monotonic() + 30
    while True:
        samples = await asyncio.to_thread(scrape, url)
        if value(samples, "rediq_limit_limited", queue="default", limit="c:hold:acme") == 2:
            break
        assert time.monotonic() < deadline, f"no limited tasks scraped: {worker.output[-2000:]}"
        await asyncio.sleep(0.05)  # re-check interval of a bounded wait
    assert value(samples, "rediq_limit_running", queue="default", limit="c:hold:acme") == 1
    assert value(samples, "rediq_limit_running", queue="default", limit="c") == 1
    assert value(samples, "rediq_queue_limit", queue="default", kind="concurrency") == 10
    assert value(samples, "rediq_queue_limit", queue="default", kind="rate") == 20
    samples = await asyncio.to_thread(scrape, url)  # depths are read before the limits
    assert value(samples, "rediq_queue_tasks", queue="default", state="limited") == 2


EXPIRING_BODY = """
@app.task(task_name="late", task_queue="later")
async def late():
    return None
"""


async def test_tasks_a_workers_claim_ended_expired_are_counted(harness: Harness) -> None:
    """The worker whose claim ends a task ``expired`` counts it (a plugin hook)."""
    tasks = harness.write_app(EXPIRING_BODY)
    handle = await tasks.late().options(expires=0.05).enqueue()  # no worker serves "later"
    record = await tasks.app.control.task(handle.hex())
    for _ in range(500):  # the expiry passes while nobody claims
        if time.time() * 1000 >= record.enqueued_at_ms + 100:
            break
        await asyncio.sleep(0.01)  # re-check interval of a bounded wait
    worker = harness.start(
        "--queue-name", "later", "--metrics-port", "0", "--metrics-host", "127.0.0.1"
    )
    url = metrics_url(worker)
    labels = {"task": "late", "queue": "later"}
    deadline = time.monotonic() + 30
    while (
        value(
            samples := await asyncio.to_thread(scrape, url), "rediq_tasks_expired_total", **labels
        )
        != 1
    ):
        assert time.monotonic() < deadline, f"not counted: {worker.output[-2000:]}"
        await asyncio.sleep(0.05)  # re-check interval of a bounded wait
    assert value(samples, "rediq_tasks_started_total", **labels) == 0
