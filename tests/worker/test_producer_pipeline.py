"""One producer pipeline: every message a producer sends (enqueue, enqueue_many, a cron
tick, a cron trigger) is built, shown to the enqueue hooks, sealed (signed), checked
against ``max_message_bytes`` and only then sent (ARCHITECTURE §10, "One path per job")."""

from __future__ import annotations

import ast
import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import rediq_core
from rediq import MessageTooLargeError, Rediq, current_task_info, hookimpl
from rediq_core.broker import EnqueueOutcome, TaskState
from rediq_core.info import TaskInfo
from rediq_core.message import TaskMessage
from rediq_core.plugins import make_plugin_host
from rediq_core.testing.inprocess import run_worker
from rediq_core.worker.cron import CronScheduler

from .conftest import Harness, WorkerProcess
from .test_cron import cli

pytestmark = pytest.mark.timeout(90)

KEY = "pipeline-key-" + "k" * 24
WAIT_S = 30.0

SIGNED_APP = f"""
app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
            namespace=os.environ["REDIQ_TEST_NAMESPACE"],
            serializer_name="pickle", signing_key={KEY!r})
"""


# --- a signed pickle app (the tutorial's setup) runs its schedules --------------------


def _signed_schedule(harness: Harness, expression: str, name: str) -> Any:
    """A signed pickle app with one schedule whose task prints its id and returns "ok"."""
    return harness.write_app(
        SIGNED_APP
        + f"""
@app.cron({expression!r}, name={name!r})
@app.task(task_name={name!r})
async def {name}():
    out("RAN", current_task_info().task_id)
    return "ok"
"""
    )


async def _ran(m: Any, worker: WorkerProcess, task_id: str) -> None:
    """The worker's first run has an id matching ``task_id`` (it was not dead-lettered)
    and it succeeded."""
    [first] = worker.wait_for(r"^RAN |rejected unread")
    assert re.fullmatch(f"RAN {task_id}", first), first
    assert await m.app.result(first.split()[1], timeout=WAIT_S) == "ok"


async def test_a_signed_pickle_app_runs_its_cron_ticks(harness: Harness) -> None:
    m = _signed_schedule(harness, "* * * * * *", "beat")
    worker = harness.start()
    await _ran(m, worker, r"cron:beat:\d+")


async def test_a_signed_pickle_app_runs_a_triggered_schedule(harness: Harness) -> None:
    m = _signed_schedule(harness, "0 0 1 1 *", "yearly")
    worker = harness.start()
    worker.wait_for(r"cron: serving 1 schedule\(s\): yearly")
    triggered = re.search(r"as task (\S+)", line := cli(harness, "trigger", "yearly"))
    assert triggered, line
    await _ran(m, worker, re.escape(triggered[1]))


# --- every path: signed, hooked, size-checked ---------------------------------------


@dataclass
class Hooks:
    """A plugin that adds a header before every enqueue and records both hooks."""

    header: str = "hooked"
    before: list[str] = field(default_factory=list)
    after: dict[str, tuple[TaskMessage, EnqueueOutcome]] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    @hookimpl
    def rediq_before_task_enqueue(self, message: TaskMessage) -> None:
        message.headers["x-pipeline"] = self.header
        self.before.append(message.id)

    @hookimpl
    def rediq_after_task_enqueue(self, message: TaskMessage, outcome: EnqueueOutcome) -> None:
        self.after[message.id] = (message, outcome)
        self.answered.set()

    async def after_hook_of(self, task_id: str) -> tuple[TaskMessage, EnqueueOutcome]:
        """What the after hook got for ``task_id`` (a worker may run a cron tick's task
        before its scheduler, in the same process, has called the hook)."""

        async def called() -> tuple[TaskMessage, EnqueueOutcome]:
            while task_id not in self.after:
                self.answered.clear()
                await self.answered.wait()
            return self.after[task_id]

        try:
            return await asyncio.wait_for(called(), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"no rediq_after_task_enqueue for {task_id}") from None


@dataclass
class SignedApp:
    app: Rediq
    hooks: Hooks
    ran: asyncio.Queue[TaskInfo]


@pytest.fixture
async def signed(rediq_redis_url: str, rediq_namespace: str) -> AsyncIterator[SignedApp]:
    hooks = Hooks()
    app = Rediq(
        rediq_redis_url,
        namespace=rediq_namespace,
        serializer_name="pickle",
        signing_key=KEY,
        plugins=make_plugin_host(plugins=[hooks]),
    )
    ran: asyncio.Queue[TaskInfo] = asyncio.Queue()

    @app.task(task_name="other", task_queue="ticks")
    async def other() -> None: ...

    @app.cron("* * * * * *", name="tick", queue="ticks")
    @app.cron("0 0 1 1 *", name="yearly")
    @app.task(task_name="job")
    async def job(n: int = 0) -> int:
        ran.put_nowait(current_task_info())
        return n

    try:
        yield SignedApp(app, hooks, ran)
    finally:
        await app.close()


async def _enqueue(s: SignedApp) -> list[str]:
    return [(await s.app.tasks["job"](1).enqueue()).id]


async def _enqueue_many(s: SignedApp) -> list[str]:
    job = s.app.tasks["job"]
    return [h.id for h in await s.app.enqueue_many([job(2), job(3)])]


async def _cron_tick(s: SignedApp) -> list[str]:
    return []  # the worker serving "ticks" fires one every second


async def _cron_trigger(s: SignedApp) -> list[str]:
    broker = s.app.get_broker()
    spec = s.app.schedules["yearly"].spec
    await broker.cron_register(spec.queue, {spec.name: spec.to_json()})
    return [await s.app.cron_control.trigger("yearly")]


@pytest.mark.parametrize(
    "produce", [_enqueue, _enqueue_many, _cron_tick, _cron_trigger], ids=lambda f: f.__name__[1:]
)
async def test_every_path_signs_and_calls_the_enqueue_hooks(
    signed: SignedApp, produce: Callable[[SignedApp], Awaitable[list[str]]]
) -> None:
    ids = await produce(signed)
    queues = ("ticks",) if produce is _cron_tick else ("default",)
    async with run_worker(signed.app, queues=queues):
        runs = [await _run(signed) for _ in ids or [None]]
        answers = {r.task_id: await signed.hooks.after_hook_of(r.task_id) for r in runs}
    if not ids:  # a tick: its id names the schedule
        assert runs[0].task_id.startswith("cron:tick:"), runs[0].task_id
        ids = [runs[0].task_id]
    assert sorted(r.task_id for r in runs) == sorted(ids)  # verified by the worker, so signed
    for info in runs:
        assert info.headers["x-pipeline"] == "hooked", info.headers  # hooked before sealing
        assert info.task_id in signed.hooks.before
        sent, outcome = answers[info.task_id]
        assert sent.signature, "the after hook sees the message as sent (sealed)"
        assert outcome.accepted and outcome.state in (TaskState.PENDING, TaskState.SCHEDULED)


async def test_the_after_hook_pairs_every_tick_that_stored_nothing(signed: SignedApp) -> None:
    """A tick another worker fired first and the tick of a paused schedule still get their
    after hook (accepted False), so a plugin that opens something before an enqueue (a
    trace span) can always close it."""
    broker = signed.app.get_broker()
    spec = signed.app.schedules["yearly"].spec
    await broker.cron_register(spec.queue, {spec.name: spec.to_json()})
    cron = signed.app.schedules["yearly"].cron
    tick = cron.next_after(0)
    producer, after = signed.app.producer, signed.hooks.after
    first, fired = await producer.publish_tick(broker, spec, tick)
    stored = after.pop(first.id)[1]
    again, lost = await producer.publish_tick(broker, spec, tick)  # as a racing worker would
    elsewhere = after.pop(again.id)[1]
    await broker.cron_set_paused(spec.queue, spec.name, True)
    later, paused = await producer.publish_tick(broker, spec, cron.next_after(tick))
    skipped = after.pop(later.id)[1]
    assert [f.result.value for f in (fired, lost, paused)] == ["fired", "already", "paused"]
    assert first.id == again.id and signed.hooks.before.count(first.id) == 2
    assert (stored.accepted, elsewhere.accepted, skipped.accepted) == (True, False, False)
    assert (elsewhere.state, skipped.state) == (TaskState.PENDING, TaskState.CANCELLED)


async def _run(s: SignedApp) -> TaskInfo:
    try:
        return await asyncio.wait_for(s.ran.get(), WAIT_S)
    except TimeoutError:
        raise AssertionError(f"no run within {WAIT_S} s (dead-lettered? see the log)") from None


def test_a_schedule_over_the_size_limit_is_refused_at_registration() -> None:
    app = Rediq(max_message_bytes=1000)

    @app.task
    async def big(blob: str) -> None: ...

    with pytest.raises(MessageTooLargeError, match="over this app's max_message_bytes=1,000"):
        app.cron("@hourly", args=("x" * 2000,))(big)
    assert not app.schedules


async def test_a_trigger_over_the_size_limit_is_refused_unsent(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    """A schedule stored by a deployment with a larger limit, triggered by this app."""
    roomy = Rediq(rediq_redis_url, namespace=rediq_namespace)
    strict = Rediq(rediq_redis_url, namespace=rediq_namespace, max_message_bytes=1000)
    try:

        @roomy.cron("@yearly", name="big", args=("x" * 2000,))
        @roomy.task(task_name="big")
        async def big(blob: str) -> None: ...

        spec = roomy.schedules["big"].spec
        await roomy.get_broker().cron_register(spec.queue, {spec.name: spec.to_json()})
        with pytest.raises(MessageTooLargeError, match="max_message_bytes=1,000"):
            await strict.cron_control.trigger("big")
        stats = await strict.get_broker().queue_stats(spec.queue)
        assert (stats.pending, stats.scheduled) == (0, 0)
    finally:
        await roomy.close()
        await strict.close()


async def test_a_tick_that_hooks_push_over_the_limit_is_refused_unsent(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    hooks = Hooks(header="x" * 2000)
    app = Rediq(
        rediq_redis_url,
        namespace=rediq_namespace,
        max_message_bytes=1500,
        plugins=make_plugin_host(plugins=[hooks]),
    )

    @app.cron("* * * * * *", name="tick")
    @app.task(task_name="tick")
    async def tick() -> None: ...

    refused = _LogQueue()
    logging.getLogger("rediq.cron").addHandler(refused)
    scheduler = CronScheduler(app, app.get_broker(), ["default"])
    running = asyncio.create_task(scheduler.run())
    try:
        record = await refused.matching("not sent")
        assert "max_message_bytes=1,500" in record, record
        stats = await app.get_broker().queue_stats("default")
        assert (stats.pending, stats.scheduled) == (0, 0)
        assert hooks.before and not hooks.after
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        logging.getLogger("rediq.cron").removeHandler(refused)
        await app.close()


class _LogQueue(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: asyncio.Queue[str] = asyncio.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put_nowait(record.getMessage())

    async def matching(self, text: str) -> str:
        async def find() -> str:
            while text not in (message := await self.records.get()):
                pass
            return message

        try:
            return await asyncio.wait_for(find(), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"no log line with {text!r} within {WAIT_S} s") from None


# --- no path around the pipeline ------------------------------------------------------

#: The broker operations that send a message to a queue.
SEND_OPERATIONS = frozenset({"enqueue", "cron_fire"})
#: The one module allowed to call them.
PIPELINE = "rediq_core/producer.py"
#: References that are not a producer sending through a broker, and why.
NOT_A_PRODUCER = {
    # the contract suites exercise a broker itself with hand-made messages
    ("rediq_core/testing/contract/consumer.py", "broker"),
    ("rediq_core/testing/contract/control.py", "broker"),
    ("rediq_core/testing/contract/cron.py", "broker"),
    ("rediq_core/testing/contract/helpers.py", "broker"),
    ("rediq_core/testing/contract/producer.py", "broker"),
    ("rediq_core/testing/contract/workflows.py", "broker"),
    ("rediq_core/testing/contract/limits.py", "broker"),
    ("rediq_core/testing/contract/events.py", "b"),
    # the Redis broker's own implementation of enqueue, and its Lua script object
    ("rediq_redis/broker.py", "producer"),
    ("rediq_redis/producer.py", "session.scripts"),
}
PACKAGES = (
    "rediq",
    "rediq_core",
    "rediq_redis",
    "rediq_memory",
    "rediq_serializers",
    "rediq_dashboard",
    "rediq_prometheus",
    "rediq_otel",
)


def _sends(root: Path) -> list[tuple[str, str, int]]:
    """(file, receiver, line) of every use of a send operation on something, except
    ``call.enqueue()`` without arguments (a task call publishing itself), also when its
    blocking twin hands it to the sync runner: ``...sync_runner.call(self.enqueue)``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            bare_calls = {
                id(node.func)
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and not node.args and not node.keywords
            }
            bare_calls |= {
                id(node.args[0])
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "call"
                and ast.unparse(node.func.value).endswith("sync_runner")
                and len(node.args) == 1
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.ctx, ast.Load)
                    and node.attr in SEND_OPERATIONS
                    and not (node.attr == "enqueue" and id(node) in bare_calls)
                ):
                    name = path.relative_to(root).as_posix()
                    found.append((name, ast.unparse(node.value), node.lineno))
    return found


def test_no_path_sends_around_the_pipeline() -> None:
    root = Path(rediq_core.__file__).parent.parent
    sends = _sends(root)
    around = [
        f"{name}:{line}: {receiver}.<send>"
        for name, receiver, line in sends
        if name != PIPELINE and (name, receiver) not in NOT_A_PRODUCER
    ]
    assert not around, (
        "messages must reach a broker only through the producer pipeline"
        f" ({PIPELINE}: hooks, sealing, size check); these send around it: {around}"
    )
    assert {name for name, _, _ in sends if name == PIPELINE}, "the pipeline sends nothing?"
    stale = NOT_A_PRODUCER - {(name, receiver) for name, receiver, _ in sends}
    assert not stale, f"allowed references that no longer exist: {stale}"
