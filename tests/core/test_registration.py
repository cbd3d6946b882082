"""Every misuse at decoration or call time raises at once, with a message that says what to do."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rediq import ConfigurationError, Rediq, TaskRegistrationError, UnknownNameError
from rediq_core.plugins import PluginHost
from rediq_core.plugins.events import Event


@pytest.fixture
def app(plugin_host: PluginHost) -> Rediq:
    return Rediq("redis://127.0.0.1:1/0", plugins=plugin_host)


def test_bare_and_configured_decorators(app: Rediq) -> None:
    @app.task
    async def bare(x: int) -> int:
        return x

    @app.task(
        task_name="configured",
        task_priority=123,
        task_queue="a",
        task_retries=3,
        task_timeout=10_000,
    )
    async def configured(sec: float) -> str:
        return "done"

    assert bare.name.endswith("bare") and bare.options.queue == "default"
    assert configured.options.priority == 123 and configured.options.timeout_ms == 10_000
    assert app.tasks["configured"] is configured


async def test_plain_function_stays_callable(app: Rediq) -> None:
    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    assert await add.fn(1, 2) == 3


def test_non_coroutine_task(app: Rediq) -> None:
    with pytest.raises(TaskRegistrationError, match="must be a coroutine function"):

        @app.task
        def sync(x: int) -> int:
            return x


def test_non_coroutine_event_handler(app: Rediq) -> None:
    with pytest.raises(TaskRegistrationError, match="async def"):

        @app.event
        def before_task_start() -> None:
            pass


def test_duplicate_task_name(app: Rediq) -> None:
    @app.task(task_name="same")
    async def one() -> None: ...

    with pytest.raises(TaskRegistrationError, match="already registered.*unique task_name"):

        @app.task(task_name="same")
        async def two() -> None: ...


def test_unknown_event_name(app: Rediq) -> None:
    with pytest.raises(
        TaskRegistrationError, match="unknown event 'before_start'.*before_task_start"
    ):

        @app.event(event_name="before_start")
        async def handler() -> None: ...


def test_events_bare_named_and_in_registration_order(app: Rediq) -> None:
    @app.event
    async def after_task_success() -> None: ...

    @app.event(event_name="after_task_success")
    async def second() -> None: ...

    assert app.handlers[Event.AFTER_TASK_SUCCESS] == [after_task_success, second]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("task_priority", "high", "task_priority='high' is invalid: expected an integer"),
        ("task_priority", 2**40, "between"),
        ("task_priority", True, "expected an integer"),
        ("task_retries", -1, "task_retries=-1 is invalid"),
        ("task_timeout", 0, "task_timeout=0 is invalid"),
        ("task_queue", "bad queue", "letters, digits"),
        ("task_queue", "{tag}", "letters, digits"),
        ("task_name", "", "non-empty string"),
        ("result_ttl", -5, "result_ttl=-5 is invalid"),
    ],
)
def test_invalid_option_values(app: Rediq, option: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):

        @app.task(**{option: value})
        async def task() -> None: ...


def test_unknown_option_name(app: Rediq) -> None:
    with pytest.raises(TypeError, match="task_prority"):
        app.task(task_prority=1)  # type: ignore[call-overload]


def test_wrong_call_arguments(app: Rediq) -> None:
    @app.task(task_name="needs_two")
    async def needs_two(a: int, b: int) -> None: ...

    with pytest.raises(
        TypeError, match="task 'needs_two' cannot be called.*Its signature is needs_two\\(a"
    ):
        needs_two(1)  # type: ignore[call-arg]


def test_per_call_options(app: Rediq) -> None:
    @app.task(task_name="t", task_priority=5)
    async def t() -> None: ...

    call = t().options(priority=1, queue="other", delay=2, task_id="job-1", result_ttl=0)
    assert call.resolved_options.priority == 1 and call.resolved_options.queue == "other"
    assert call.task_id == "job-1" and call.resolved_options.result_ttl_s == 0
    # A delay travels as a duration; the broker computes the due time on its own clock.
    assert (call.delay_ms, call.eta_ms) == (2000, None)
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert (call.options(eta=when).eta_ms, call.options(eta=when).delay_ms) == (
        int(when.timestamp() * 1000),
        None,
    )
    assert t().groups("import", "user:42").groups("x").group_names == ("import", "user:42", "x")
    assert t.options.priority == 5, "per-call options must not change the task"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay": 1, "eta": dt.datetime.now(dt.UTC)}, "either delay or eta"),
        ({"eta": dt.datetime(2030, 1, 1)}, "naive"),
        ({"delay": -1}, "delay=-1 is invalid"),
        ({"priority": "x"}, "task_priority='x'"),
        ({"queue": "a b"}, "queue='a b' is invalid"),
        ({"task_id": ""}, "task_id='' is invalid"),
    ],
)
def test_invalid_per_call_options(app: Rediq, kwargs: dict[str, Any], message: str) -> None:
    @app.task(task_name="t")
    async def t() -> None: ...

    with pytest.raises(ConfigurationError, match=message):
        t().options(**kwargs)


def test_unknown_serializer_lists_installed(plugin_host: PluginHost) -> None:
    with pytest.raises(
        UnknownNameError, match="unknown serializer 'yaml'; installed: cloudpickle, json"
    ):
        Rediq(serializer_name="yaml", plugins=plugin_host)


def test_unknown_accept_serializer(plugin_host: PluginHost) -> None:
    with pytest.raises(UnknownNameError, match="accept_serializers names 'yaml'"):
        Rediq(accept_serializers=["yaml"], plugins=plugin_host)


def test_serializer_not_accepted(app: Rediq) -> None:
    with pytest.raises(UnknownNameError, match="'pickle' is not accepted by this app"):
        app.serializer_for("pickle")


def test_default_serializer_is_json(app: Rediq) -> None:
    assert app.serializer_name == "json" and not app.serializer.executes_code_on_load


def test_unknown_broker_scheme(plugin_host: PluginHost) -> None:
    app = Rediq("amqp://localhost", plugins=plugin_host)
    with pytest.raises(
        UnknownNameError,
        match=r"unknown broker URL scheme 'amqp'.*redis, redis\+cluster,"
        r" redis\+sentinel, rediss, rediss\+cluster, rediss\+sentinel, unix",
    ):
        app.get_broker()


def test_durations_accept_timedelta(app: Rediq) -> None:
    @app.task(task_timeout=dt.timedelta(seconds=2.5), result_ttl=dt.timedelta(hours=1))
    async def t() -> None: ...

    assert t.options.timeout_ms == 2_500 and t.options.result_ttl_s == 3_600
    call = t().options(
        timeout=dt.timedelta(milliseconds=40),
        result_ttl=dt.timedelta(0),
        delay=dt.timedelta(minutes=1),
    )
    options = call.resolved_options
    assert options.timeout_ms == 40 and options.result_ttl_s == 0 and call.delay_ms == 60_000
    assert t().options(timeout=700, result_ttl=5).resolved_options.timeout_ms == 700
