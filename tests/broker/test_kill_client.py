"""Atomicity under failure: a client SIGKILLed between any two protocol commands (or at a
random instant inside a busy loop) leaves the old or the new state, and nothing is lost."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions, Settlement, TaskState
from rediq_redis import RedisBroker

from .audit import audit_queue
from .protocol_client import QUEUE

ROOT = Path(__file__).resolve().parents[2]

#: The state of the task after each step of protocol_client.steps.
EXPECTED = {
    0: None,
    1: "pending",
    2: "active",
    3: "active",
    4: "pending",
    5: "active",
    6: "succeeded",
}


def spawn(url: str, namespace: str, task_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.broker.protocol_client", url, namespace, task_id],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, f"child exited early with {process.wait(timeout=10)}"
    return line


def advance_to(process: subprocess.Popen[str], step: int) -> None:
    assert process.stdin is not None
    for n in range(step + 1):
        assert read_line(process) == f"step {n}"
        if n < step:
            process.stdin.write("\n")
            process.stdin.flush()


async def recover(url: str, namespace: str, task_id: str) -> None:
    """Another worker finishes whatever the killed client left."""
    broker = RedisBroker(BrokerOptions(url=url, namespace=namespace))
    try:
        record = await broker.get_task(task_id, QUEUE)
        while record is not None and record.state.unfinished:
            batch = await asyncio.wait_for(
                broker.fetch(QUEUE, worker_id="rescuer", limit=1, lease_ms=5000), 5
            )
            await broker.settle(
                "rescuer", [Settlement(d.message.id, QUEUE, result=b"r") for d in batch.deliveries]
            )
            record = await broker.get_task(task_id, QUEUE)
        if record is not None:
            assert record.state is TaskState.SUCCEEDED
    finally:
        await broker.close()


@pytest.mark.parametrize("step", sorted(EXPECTED))
async def test_kill_between_commands(rediq_redis_url: str, redis: Redis, step: int) -> None:
    namespace, task_id = f"k{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    process = spawn(rediq_redis_url, namespace, task_id)
    try:
        advance_to(process, step)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    state = await audit_queue(redis, namespace, QUEUE)
    broker = RedisBroker(BrokerOptions(url=rediq_redis_url, namespace=namespace))
    try:
        record = await broker.get_task(task_id, QUEUE)
    finally:
        await broker.close()
    assert (record.state.value if record else None) == EXPECTED[step]
    assert len(state.states) == (1 if EXPECTED[step] not in (None, "succeeded") else 0)
    await recover(rediq_redis_url, namespace, task_id)


@pytest.mark.parametrize("seed", range(4))
async def test_kill_at_random_instant(rediq_redis_url: str, redis: Redis, seed: int) -> None:
    namespace = f"k{uuid.uuid4().hex[:10]}"
    process = spawn(rediq_redis_url, namespace, "loop")
    try:
        assert read_line(process) == "running"
        await asyncio.sleep(random.Random(seed).uniform(0.05, 0.4))  # the random instant
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    state = await audit_queue(redis, namespace, QUEUE)
    stats_key = f"{{{namespace}:{QUEUE}}}:stats"
    enqueued = int(await redis.hget(stats_key, "enqueued") or 0)
    succeeded = int(await redis.hget(stats_key, "succeeded") or 0)
    assert enqueued == succeeded + len(state.states), "a task was lost or counted twice"
    for task_id in list(state.states):
        await recover(rediq_redis_url, namespace, task_id)
    final = await audit_queue(redis, namespace, QUEUE)
    assert not final.states
