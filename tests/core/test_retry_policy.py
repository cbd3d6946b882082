"""Retry policies decided without a broker: which errors retry, the delays, the jitter
bounds, and the per-call policy's trip through a message header."""

from __future__ import annotations

import datetime as dt

import pytest

from rediq import ConfigurationError, Rediq, Retry, RetryPolicy
from rediq_core.plugins import PluginHost
from rediq_core.retry import RETRY_HEADER, jittered

WORKER = {"base_ms": 1_000, "cap_ms": 300_000, "jitter": 0.5}


class Transient(Exception): ...


class Subtransient(Transient): ...


def test_retry_on_and_dont_retry_on_match_subclasses() -> None:
    policy = RetryPolicy(retry_on=(Transient, TimeoutError), dont_retry_on=(Subtransient,))
    assert policy.retries_error(Transient())
    assert policy.retries_error(TimeoutError())
    assert not policy.retries_error(Subtransient())
    assert not policy.retries_error(ValueError())
    assert policy.retries_error(Retry())  # asked for explicitly: always retried


def test_default_policy_retries_every_exception() -> None:
    assert RetryPolicy().retries_error(ValueError())


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(base=0.1, jitter=0), [100, 200, 400, 800]),
        (RetryPolicy(backoff="fixed", base=dt.timedelta(seconds=2), jitter=0), [2000] * 4),
        (RetryPolicy(base=1, cap=3, jitter=0), [1000, 2000, 3000, 3000]),
        (RetryPolicy(backoff=lambda n: 0.5 * (n + 1), jitter=0), [500, 1000, 1500, 2000]),
        (
            RetryPolicy(backoff=lambda n: dt.timedelta(minutes=n), cap=90, jitter=0),
            [0, 60_000, 90_000, 90_000],
        ),
        (RetryPolicy(jitter=0), [1000, 2000, 4000, 8000]),  # the worker's base
    ],
)
def test_backoff_delays(policy: RetryPolicy, delays: list[int]) -> None:
    assert [policy.delay_ms(n, **WORKER) for n in range(4)] == delays  # type: ignore[arg-type]


@pytest.mark.parametrize(("jitter", "low"), [(0.5, 500), (1.0, 0), (0.2, 800), (0.0, 1000)])
def test_jitter_bounds(jitter: float, low: int) -> None:
    draws = [jittered(1000, jitter) for _ in range(2000)]
    assert min(draws) >= low and max(draws) <= 1000
    if jitter:  # the whole range is used, not a corner of it
        span = 1000 - low
        assert min(draws) < low + span * 0.1 and max(draws) > 1000 - span * 0.1


def test_policy_jitter_falls_back_to_the_workers() -> None:
    policy = RetryPolicy(backoff="fixed", base=1)
    draws = {policy.delay_ms(0, base_ms=0, cap_ms=10_000, jitter=0.5) for _ in range(500)}
    assert min(draws) >= 500 and max(draws) <= 1000 and len(draws) > 50


def test_retry_delay_units() -> None:
    assert Retry(delay=2.5).delay_ms == 2_500
    assert Retry(delay=dt.timedelta(milliseconds=30)).delay_ms == 30
    assert Retry().delay_ms is None
    with pytest.raises(ConfigurationError, match="delay"):
        Retry(delay=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "retries"),
        ({"backoff": "linear"}, "backoff"),
        ({"jitter": 2}, "jitter"),
        ({"retry_on": (int,)}, "exception types"),
        ({"base": -1}, "base"),
    ],
)
def test_invalid_policies(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_per_task_and_per_call_policies(plugin_host: PluginHost) -> None:
    app = Rediq("redis://127.0.0.1:1/0", plugins=plugin_host)
    task_policy = RetryPolicy(retries=4, backoff=lambda n: 1, retry_on=(Transient,))

    @app.task(retry=task_policy)
    async def job() -> None: ...

    assert job.options.retries == 4 and job.options.retry is task_policy
    message = app.build_message(job())
    assert message.max_retries == 4 and RETRY_HEADER not in message.headers

    call = job().options(
        retry=RetryPolicy(retries=1, backoff="fixed", base=0.25, dont_retry_on=(Subtransient,))
    )
    message = app.build_message(call)
    assert message.max_retries == 1
    carried = RetryPolicy.from_header(message.headers[RETRY_HEADER])
    assert carried.base_ms == 250 and carried.backoff == "fixed"
    assert carried.retries_error(ValueError()) and not carried.retries_error(Subtransient())

    with pytest.raises(ConfigurationError, match="per call"):
        job().options(retry=RetryPolicy(backoff=lambda n: 1))
    with pytest.raises(ConfigurationError, match="disagree"):
        job().options(retries=2, retry=RetryPolicy(retries=3))
