"""``@app.cron`` checks everything at decoration time, with messages that say what to do."""

from __future__ import annotations

import re

import pytest

from rediq import ConfigurationError, Rediq, TaskRegistrationError, UnknownNameError
from rediq_core.plugins import PluginHost


@pytest.fixture
def app(plugin_host: PluginHost) -> Rediq:
    return Rediq("redis://127.0.0.1:1/0", plugins=plugin_host)


def test_several_schedules_with_arguments_zone_seconds_alias_and_jitter(app: Rediq) -> None:
    @app.cron("@hourly")
    @app.cron(
        "*/10 * * * * *",
        name="fast",
        args=(1,),
        kwargs={"b": 2},
        timezone="Europe/Berlin",
        jitter=0.5,
        missed="run_once",
        priority=-5,
    )
    @app.task(task_name="report")
    async def report(a: int = 0, b: int = 0) -> int:
        return a + b

    assert set(app.schedules) == {"fast", "report[@hourly]"}
    fast = app.schedules["fast"].spec
    assert (fast.task, fast.queue, fast.timezone, fast.jitter_ms) == (
        "report",
        "default",
        "Europe/Berlin",
        500,
    )
    assert (fast.missed, fast.priority) == ("run_once", -5)
    assert app.serializer.loads(fast.payload) == [[1], {"b": 2}]
    assert fast.task_id(1_000) == "cron:fast:1000"
    assert app.schedules["fast"].cron.has_seconds


def test_the_runs_of_a_limited_task_carry_its_limits(app: Rediq) -> None:
    @app.cron("* * * * *", args=("acme",))
    @app.task(task_name="sync", concurrency_limit=1, concurrency_key="tenant", expires=30)
    async def sync(tenant: str) -> None: ...

    @app.cron("@hourly")
    @app.task(task_name="plain")
    async def plain() -> None: ...

    spec = app.schedules[
        "sync[* * * * *]#" + next(n.split("#")[1] for n in app.schedules if n.startswith("sync"))
    ].spec
    run = spec.message(spec.task_id(60_000), tick_ms=60_000, eta_ms=None)
    assert run.flow is not None
    assert run.flow.concurrency == (("c:sync:acme", 1),) and run.flow.expires_ms == 30_000
    # a schedule without limits is stored as before (its version does not change)
    assert "flow" not in app.schedules["plain[@hourly]"].spec.to_json()


def test_schedule_on_another_known_queue(app: Rediq) -> None:
    @app.task(task_queue="reports")
    async def other() -> None: ...

    @app.cron("0 * * * *", queue="reports")
    @app.task(task_name="job")
    async def job() -> None: ...

    assert app.schedules["job[0 * * * *]"].spec.queue == "reports"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"expression": "61 * * * *"},
            ConfigurationError,
            "invalid cron expression '61 \\* \\* \\* \\*'",
        ),
        ({"expression": "* * *"}, ConfigurationError, "invalid cron expression"),
        ({"expression": ""}, ConfigurationError, "is empty"),
        (
            {"timezone": "Europe/Atlantis"},
            ConfigurationError,
            "'Europe/Atlantis' is not a known IANA time zone",
        ),
        (
            {"queue": "nobody-serves-this"},
            UnknownNameError,
            "names queue 'nobody-serves-this', which no task of this app uses",
        ),
        ({"queue": "bad queue!"}, ConfigurationError, "queue='bad queue!' is invalid"),
        ({"missed": "later"}, ConfigurationError, "missed='later' is invalid"),
        ({"jitter": -1}, ConfigurationError, "jitter=-1 is invalid"),
    ],
)
def test_bad_input_is_refused(
    app: Rediq, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    @app.task
    async def job() -> None: ...

    options = {"expression": "* * * * *", **kwargs}
    expression = str(options.pop("expression"))
    with pytest.raises(error, match=message):
        app.cron(expression, **options)(job)  # type: ignore[arg-type]
    assert not app.schedules


def test_task_with_required_arguments_needs_them(app: Rediq) -> None:
    @app.task(task_name="send")
    async def send(to: str, *, urgent: bool) -> None: ...

    with pytest.raises(
        ConfigurationError,
        match=r"task 'send': the task cannot be called with args=\(\)"
        r".*missing a required argument: 'to'.*args=\.\.\., kwargs=\.\.\.",
    ):
        app.cron("@daily")(send)
    app.cron("@daily", args=("ops",), kwargs={"urgent": True})(send)
    app.cron("@daily", args=("dev",), kwargs={"urgent": False})(send)
    names = sorted(app.schedules)
    assert len(names) == 2 and all(re.fullmatch(r"send\[@daily\]#[0-9a-f]{8}", n) for n in names)


def test_arguments_must_be_serializable(app: Rediq) -> None:
    @app.task
    async def job(x: object) -> None: ...

    with pytest.raises(Exception, match="cannot be serialized"):
        app.cron("@daily", args=(object(),))(job)


def test_cron_goes_on_top_of_a_task_of_this_app(app: Rediq, plugin_host: PluginHost) -> None:
    async def plain() -> None: ...

    with pytest.raises(TaskRegistrationError, match="put it above @app.task"):
        app.cron("@daily")(plain)  # type: ignore[arg-type]
    other = Rediq("redis://127.0.0.1:1/0", plugins=plugin_host)

    @other.task
    async def foreign() -> None: ...

    with pytest.raises(TaskRegistrationError, match="must decorate a task of this app"):
        app.cron("@daily")(foreign)


def test_schedule_names_are_unique(app: Rediq) -> None:
    @app.task
    async def job() -> None: ...

    app.cron("@daily", name="nightly")(job)
    with pytest.raises(TaskRegistrationError, match="'nightly' is already registered"):
        app.cron("@hourly", name="nightly")(job)
