"""The chaos schedule the chaos tests share: one worker SIGKILLed and replaced a second."""

from __future__ import annotations

import asyncio
import random
import signal
from typing import Any

from ..worker.conftest import Harness, WorkerProcess


async def kill_one_a_second(
    harness: Harness,
    workers: list[WorkerProcess],
    counter: Any,
    kills: int,
    seed: int,
    args: tuple[str, ...] = (),
) -> set[str]:
    """SIGKILL a random worker of ``workers`` once a second, ``kills`` times, starting a
    new one (with ``args``) in its place; return what the victims were running at their
    kill: the members of ``<namespace>:running:<pid>`` each task body keeps in ``counter``."""
    rng = random.Random(seed)
    exposed: set[str] = set()
    for _ in range(kills):
        await asyncio.sleep(1.0)  # the chaos schedule: one kill a second
        victim = workers.pop(rng.randrange(len(workers)))
        victim.proc.send_signal(signal.SIGKILL)
        victim.wait_exit(10)
        running = await counter.smembers(f"{harness.namespace}:running:{victim.proc.pid}")
        exposed |= {r.decode() for r in running}
        workers.append(harness.start(*args, ready=False))
    return exposed
