"""Cron schedules served by real ``rediq worker`` processes: the CLI (list, pause, resume,
trigger), a redeployed schedule, orphans, and ticks missed while no worker ran."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess

import pytest

from rediq_core.cron import CronControl

from .conftest import CLI, Harness

pytestmark = pytest.mark.timeout(90)

BEAT = """
@app.cron("* * * * * *", name="beat")
@app.task(task_name="beat")
async def beat():
    info = current_task_info()
    out("BEAT", info.headers.get("cron_tick_ms", "now"), info.task_id)
"""


def cli(harness: Harness, *args: str) -> str:
    done = subprocess.run(
        [*CLI, "cron", "tasks:app", *args],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_list_pause_trigger_resume_from_the_cli(harness: Harness) -> None:
    harness.write_app(BEAT)
    worker = harness.start()
    worker.wait_for(r"^BEAT \d+ cron:beat:\d+$", count=2)
    [listed] = json.loads(cli(harness, "--json"))
    assert (listed["name"], listed["task"], listed["queue"]) == ("beat", "beat", "default")
    assert listed["expression"] == "* * * * * *" and not listed["orphaned"]
    nexts = listed["next_ticks_ms"]
    assert len(nexts) == 3 and nexts[1] - nexts[0] == 1000 and nexts[2] - nexts[1] == 1000
    assert listed["last_state"] in ("succeeded", "pending", "active")
    table = cli(harness)
    assert "beat" in table and "active" in table

    assert "schedule 'beat' paused" in cli(harness, "pause", "beat")
    worker.wait_for(r"cron beat: paused, tick \d+ passes without a run", count=2)
    runs = len(worker.matching(r"^BEAT "))
    worker.wait_for(r"cron beat: paused, tick", count=4)
    assert len(worker.matching(r"^BEAT ")) == runs, "a paused schedule ran"
    assert json.loads(cli(harness, "--json"))[0]["paused"] is True

    triggered = cli(harness, "trigger", "beat")
    task_id = re.search(r"as task (\S+)", triggered)
    assert task_id, triggered
    worker.wait_for(rf"^BEAT now {re.escape(task_id.group(1))}$")

    cli(harness, "resume", "beat")
    worker.wait_for(r"^BEAT \d+ cron:beat:\d+$", count=runs + 2)


def test_unknown_schedule_is_a_one_line_error(harness: Harness) -> None:
    harness.write_app(BEAT)
    assert "not stored yet (no worker serving them has started): beat" in cli(harness)
    done = subprocess.run(
        [*CLI, "cron", "tasks:app", "pause", "nope"],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "no schedule named 'nope' is stored" in done.stderr


async def test_redeploy_changes_a_schedule_and_orphans_a_removed_one(harness: Harness) -> None:
    m = harness.write_app(
        BEAT
        + """
@app.cron("0 0 1 1 *", name="yearly")
@app.task(task_name="yearly")
async def yearly():
    pass
"""
    )
    old = harness.start()
    old.wait_for(r"^BEAT \d+ ", count=1)
    harness.write_app("""
@app.cron("*/2 * * * * *", name="beat")
@app.task(task_name="beat")
async def beat():
    info = current_task_info()
    out("BEAT2", info.headers["cron_tick_ms"])
""")
    new = harness.start()
    # the old worker is woken by the change at once and stops firing the old spec
    old.wait_for(r"cron beat: another deployment stored a different spec", timeout=5)
    new.wait_for(r"^BEAT2 \d+", count=2)
    ticks = [int(line.split()[1]) for line in new.matching(r"^BEAT2 ")]
    assert all(t % 2000 == 0 for t in ticks), ticks

    old.signal(signal.SIGKILL)
    control = CronControl(m.app.get_broker(), orphan_after_s=60)
    statuses = {s.name: s for s in await control.list()}
    assert statuses["beat"].expression == "*/2 * * * * *" and not statuses["beat"].orphaned
    assert not statuses["yearly"].orphaned  # registered a moment ago by the old worker
    strict = CronControl(m.app.get_broker(), orphan_after_s=0)
    assert all(s.orphaned for s in await strict.list())
    await control.forget("yearly")
    assert {s.name for s in await control.list()} == {"beat"}


async def test_missed_ticks_skipped_or_run_once_at_start_up(harness: Harness) -> None:
    harness.write_app("""
@app.cron("* * * * * *", name="skipper")
@app.cron("* * * * * *", name="catcher", missed="run_once")
@app.task(task_name="job")
async def job():
    info = current_task_info()
    out("RUN", info.headers["cron"], info.headers["cron_tick_ms"])
""")
    first = harness.start()
    first.wait_for(r"^RUN catcher \d+", count=1)
    first.wait_for(r"^RUN skipper \d+", count=1)
    first.signal(signal.SIGKILL)
    first.wait_exit()
    last = max(int(line.split()[2]) for line in first.matching(r"^RUN catcher "))
    await asyncio.sleep(2.5)  # the scenario: ticks pass while no worker runs
    second = harness.start()
    [caught] = second.wait_for(r"cron catcher: running missed tick (\d+) once")
    missed = int(re.search(r"tick (\d+)", caught).group(1))  # type: ignore[union-attr]
    assert missed > last
    second.wait_for(rf"^RUN catcher {missed}$")
    second.wait_for(r"cron skipper: skipped [1-9]\d* tick\(s\) missed while no worker")
