"""A Redis restart (SIGKILL, AOF with fsync on every write) in the middle of an every-second
schedule: no tick runs twice, and the workers go on firing afterwards."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from rediq_redis.testing import RedisServer

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

BEAT = """
@app.cron("* * * * * *", name="beat")
@app.task(task_name="beat")
async def beat():
    info = current_task_info()
    out("BEAT", info.headers["cron_tick_ms"], info.deliveries)
"""


async def test_no_tick_runs_twice_across_a_redis_restart(
    tmp_path: Path, rediq_namespace: str, rediq_redis_server_factory: Callable[..., RedisServer]
) -> None:
    server = rediq_redis_server_factory(
        extra_args=("--appendonly", "yes", "--appendfsync", "always")
    )
    harness = Harness(tmp_path, server.url(), rediq_namespace)
    try:
        harness.write_app(BEAT)
        workers = [harness.start(), harness.start()]
        workers[0].wait_for(r"^BEAT \d+ 1$", count=1)
        before = sum(len(w.matching(r"^BEAT ")) for w in workers)
        fired = r"cron beat: fired tick"
        total = sum(len(w.matching(fired)) for w in workers)
        server.restart()
        for worker in workers:  # the other worker wins the next tick, or this one does
            worker.wait_for(r"^BEAT ", count=len(worker.matching(r"^BEAT ")) + 1, timeout=40)
        workers[0].wait_for(r"^BEAT ", count=len(workers[0].matching(r"^BEAT ")) + 3, timeout=40)
        assert sum(len(w.matching(fired)) for w in workers) >= total + 4
        runs = Counter(
            m.group(1)
            for w in workers
            for line in w.matching(r"^BEAT ")
            if (m := re.match(r"BEAT (\d+) 1$", line))
        )
        assert sum(runs.values()) > before + 3, runs
        assert all(count == 1 for count in runs.values()), {t: c for t, c in runs.items() if c > 1}
        assert all(w.proc.poll() is None for w in workers)
    finally:
        await harness.close()
