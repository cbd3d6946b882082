"""OpenTelemetry: the SDK's in-memory exporter sees a producer and a consumer span in one
trace for one enqueue and run (a worker running in this process against real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from rediq import Rediq, chain
from rediq_core.worker import Worker, WorkerConfig
from rediq_core.worker.backoff import Backoff

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> Iterator[None]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)  # once per process: the API refuses a second one
    yield


@pytest.fixture
async def app(rediq_redis_url: str, rediq_namespace: str) -> AsyncIterator[Rediq]:
    EXPORTER.clear()
    application = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)
    yield application
    await application.close()


async def run_worker_until(app: Rediq, done: asyncio.Future[object]) -> None:
    worker = Worker(
        app,
        WorkerConfig(
            handle_signals=False,
            backoff=Backoff(base_ms=10),
            queues=("maths",),
            worker_name="tracer",
        ),
    )
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(done, 20)
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(running, 15)


def spans(name: str) -> list[ReadableSpan]:
    return [s for s in EXPORTER.get_finished_spans() if s.name == name]


async def test_one_enqueue_and_run_give_a_producer_and_a_consumer_span_in_one_trace(
    app: Rediq,
) -> None:
    @app.task(task_name="double", task_queue="maths")
    async def double(x: int) -> int:
        with trace.get_tracer("test").start_as_current_span("inside the task"):
            return 2 * x

    with trace.get_tracer("test").start_as_current_span("request") as request:
        handle = await double(21).enqueue()
    waiting = asyncio.ensure_future(handle.result(timeout=20))
    await run_worker_until(app, waiting)
    assert waiting.result() == 42

    (producer,) = spans("send maths")
    (consumer,) = spans("process maths")
    (inside,) = spans("inside the task")
    trace_id = request.get_span_context().trace_id
    assert {producer.context.trace_id, consumer.context.trace_id, inside.context.trace_id} == {
        trace_id
    }
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert producer.parent is not None and consumer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    assert consumer.parent.span_id == producer.context.span_id
    assert inside.parent is not None and inside.parent.span_id == consumer.context.span_id
    assert dict(producer.attributes or {}) == {
        "messaging.system": "rediq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "maths",
        "messaging.message.id": handle.hex(),
        "messaging.message.body.size": producer.attributes["messaging.message.body.size"],
        "rediq.task.name": "double",
        "rediq.task.priority": 0,
        "rediq.task.retries": 0,
        "rediq.enqueue.accepted": True,
    }
    assert dict(consumer.attributes or {}) == {
        "messaging.system": "rediq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "maths",
        "messaging.message.id": handle.hex(),
        "messaging.consumer.group.name": "maths",
        "rediq.task.name": "double",
        "rediq.task.retried": 0,
        "rediq.task.deliveries": 1,
        "rediq.worker.name": "tracer",
    }
    assert consumer.status.status_code is StatusCode.UNSET


async def test_a_retried_task_gives_one_consumer_span_per_attempt_in_the_same_trace(
    app: Rediq,
) -> None:
    attempts: list[int] = []

    @app.task(task_name="flaky", task_retries=1)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first attempt fails")
        return "ok"

    handle = await flaky().enqueue()
    waiting = asyncio.ensure_future(handle.result(timeout=20))
    await run_worker_until(app, waiting)

    (producer,) = spans("send default")
    first, second = sorted(spans("process default"), key=lambda s: s.start_time or 0)
    for attempt in (first, second):
        assert attempt.context.trace_id == producer.context.trace_id
        assert attempt.parent is not None and attempt.parent.span_id == producer.context.span_id
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None and first.attributes["rediq.task.will_retry"] is True
    assert [e.name for e in first.events] == ["exception"]
    assert second.attributes is not None and second.attributes["rediq.task.retried"] == 1
    assert [e.name for e in second.events] == ["rediq.retry"]
    assert second.status.status_code is StatusCode.UNSET


async def test_a_workflow_is_one_trace(app: Rediq) -> None:
    """The workflow's enqueue span is the parent of its steps' producer spans, and each
    step's attempt continues its producer span: one trace per workflow."""

    @app.task(task_name="inc", task_queue="maths")
    async def inc(x: int) -> int:
        return x + 1

    handle = await chain(inc(1), inc.s(), inc.s()).enqueue()
    waiting = asyncio.ensure_future(handle.result(timeout=20))
    await run_worker_until(app, waiting)
    assert waiting.result() == 4

    (workflow,) = spans("enqueue workflow")
    producers, consumers = spans("send maths"), spans("process maths")
    assert len(producers) == len(consumers) == 3
    assert workflow.attributes is not None
    assert workflow.attributes["rediq.workflow.id"] == handle.id
    assert workflow.attributes["rediq.workflow.steps"] == 3
    assert {s.context.trace_id for s in (workflow, *producers, *consumers)} == {
        workflow.context.trace_id
    }
    assert all(
        p.parent is not None and p.parent.span_id == workflow.context.span_id for p in producers
    )
    by_producer = {p.context.span_id for p in producers}
    assert all(c.parent is not None and c.parent.span_id in by_producer for c in consumers)
