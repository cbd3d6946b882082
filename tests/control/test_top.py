"""``rediq top`` under a pseudo-terminal while a worker drains a queue: the numbers on the
screen change frame by frame, and ``q`` quits. Piped, it prints one snapshot."""

from __future__ import annotations

import asyncio
import re
import time

import pexpect
import pytest

from .conftest import CLI, Harness, cli

pytestmark = pytest.mark.timeout(90)

APP = """
import redis.asyncio as redis_asyncio

gate = redis_asyncio.from_url(os.environ["REDIQ_REDIS_URL"])

@app.task(task_queue="drain")
async def step(n):
    if n >= 100:  # tasks 100-199 and 200-299 wait until the test opens their gate
        name = f"{os.environ['REDIQ_TEST_NAMESPACE']}:gate{n // 100}"
        await gate.blmove(name, name, 0)
    return n
"""
COUNT = 300
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")
# queue | state | pending | scheduled | active | dead | oldest | enqueued | succeeded
ROW = re.compile(
    r"│ drain\s*│\s*\w+\s*│\s*(\d+)\s*│\s*\d+\s*│\s*\d+\s*│\s*\d+\s*│[^│]*│"
    r"\s*\d+\s*│\s*(\d+)\s*│"
)


def spawn_top(harness: Harness, rows: int = 60) -> pexpect.spawn:
    """``rediq top`` on a pseudo-terminal (220 columns), refreshing every 0.25 s."""
    return pexpect.spawn(
        CLI[0],
        [
            *CLI[1:],
            "top",
            "--redis-url",
            harness.url,
            "--namespace",
            harness.namespace,
            "--interval",
            "0.25",
        ],
        cwd=str(harness.dir),
        env={**harness.env, "TERM": "xterm-256color"},
        dimensions=(rows, 220),
        encoding="utf-8",
    )


def quit_top(child: pexpect.spawn) -> None:
    """Press ``q``: the view ends with exit status 0."""
    child.send("q")
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    assert child.exitstatus == 0


def frames(child: pexpect.spawn, succeeded: int, until: float) -> list[tuple[int, int]]:
    """(pending, succeeded) of every frame drawn until one shows ``succeeded`` (or
    ``until``)."""
    seen: list[tuple[int, int]] = []
    screen = ""
    while time.monotonic() < until:
        try:
            screen += child.read_nonblocking(1 << 16, timeout=0.2)
        except pexpect.TIMEOUT:
            continue
        found = [(int(p), int(s)) for p, s in ROW.findall(ANSI.sub("", screen))]
        screen = screen[-4000:]
        seen += [f for f in found if not seen or f != seen[-1]]
        if seen and seen[-1][1] == succeeded:
            break
    return seen


async def test_top_shows_a_draining_queue_live(harness: Harness) -> None:
    m = harness.write_app(APP)
    handles = await m.app.enqueue_many([m.step(n) for n in range(COUNT)])
    child = spawn_top(harness)
    try:
        child.expect("rediq top", timeout=20)
        harness.start(
            "--queue-name",
            "drain",
            "--skip-default-queue",
            "--worker-task-concurrency",
            "5",
            "--worker-queue-size",
            "5",
        )
        seen: list[tuple[int, int]] = []
        for done, gate in ((100, 1), (200, 2), (COUNT, None)):  # the screen follows each step
            seen += await asyncio.to_thread(frames, child, done, time.monotonic() + 40)
            assert seen and seen[-1][1] == done, f"the screen never showed {done} done: {seen}"
            if gate is not None:
                await m.gate.rpush(f"{harness.namespace}:gate{gate}", "open")
        print(f"\n[measure] top_frames (pending, succeeded) = {seen}")
        assert seen[-1] == (0, COUNT), f"the screen never showed the queue drained: {seen}"
        pending = [p for p, _ in seen]
        assert len(set(pending)) >= 3, f"the numbers did not change on screen: {seen}"
        assert pending == sorted(pending, reverse=True)
        quit_top(child)
    finally:
        if child.isalive():
            child.terminate(force=True)
        await m.gate.aclose()
    assert await handles[-1].result(timeout=5) == COUNT - 1


async def test_top_piped_prints_one_snapshot(harness: Harness) -> None:
    m = harness.write_app(APP)
    await m.step(1).enqueue()
    done = await cli(harness, "top")
    assert done.code == 0, done
    assert done.out.count("rediq top") == 1 and "drain" in done.out
    assert "latest failures" in done.out and "workers" in done.out
    doc = (await cli(harness, "top", "--json")).json()
    assert [q["name"] for q in doc["queues"]] == ["drain"] and doc["queues"][0]["pending"] == 1
    assert doc["workers"] == [] and doc["failures"] == []
