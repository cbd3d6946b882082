"""What a worker logs while Redis is down: one "lost the connection" line when the outage
starts, one "reconnected" line once a command succeeded again, and no listener noise in
between (docs/reliability.md, "What each fault does")."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from rediq_redis.testing import RedisServer

from ..worker.conftest import Harness

pytestmark = pytest.mark.timeout(120)

APP = """
@app.cron("0 0 1 1 *", name="yearly")
@app.task
async def yearly():
    return 0

@app.task
async def unit(n):
    return n
"""

LOST = r"lost the connection to redis://"
RECONNECTED = r"reconnected to redis://"
LISTENER_FAILED = r"listener failed"
#: A failed attempt to reach Redis, as logged at debug level during an outage (and, before
#: the outage logging was fixed, as the repeated warnings themselves).
ATTEMPT = r"still no connection to redis://|" + LOST + "|" + LISTENER_FAILED
ATTEMPTS_IN_OUTAGE = 8


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
async def test_an_outage_logs_one_lost_and_one_reconnected_line(
    harness: Harness, rediq_redis_server_factory: Callable[..., RedisServer], how: str
) -> None:
    server = rediq_redis_server_factory()
    harness.url = server.url()
    harness.env["REDIQ_REDIS_URL"] = server.url()
    m = harness.write_app(APP)
    worker = harness.start("--log-level", "debug")
    worker.wait_for(r"cron: serving 1 schedule")
    assert await (await m.unit(1).enqueue()).result(timeout=20) == 1

    server.kill() if how == "SIGKILL" else server.stop()
    worker.wait_for(LOST, timeout=30)
    # The worker keeps trying (fetchers, listeners, lease keeper): let several attempts fail.
    seen = len(worker.matching(ATTEMPT))
    worker.wait_for(ATTEMPT, count=seen + ATTEMPTS_IN_OUTAGE, timeout=60)
    restarted_at = len(worker.lines)
    server.start()

    assert await (await m.unit(2).enqueue()).result(timeout=30) == 2  # back at work
    worker.wait_for(RECONNECTED, timeout=30)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(30) == 0

    lines = worker.lines
    lost = [line for line in lines if LOST in line]
    reconnected = [i for i, line in enumerate(lines) if "reconnected to redis://" in line]
    failed = [line for line in lines if LISTENER_FAILED in line]
    outage = "\n".join(line for line in lines if "DEBUG" not in line)
    assert len(lost) == 1, f"{len(lost)} 'lost the connection' lines:\n{outage}"
    assert len(reconnected) == 1, f"{len(reconnected)} 'reconnected' lines:\n{outage}"
    assert reconnected[0] >= restarted_at, f"'reconnected' while Redis was down:\n{outage}"
    assert not failed, f"listener failures logged during the outage:\n{outage}"
