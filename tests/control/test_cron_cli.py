"""``rediq cron`` takes the target options of every control command (``--app``,
``--redis-url``, ``--namespace``, ``--json``), prints errors as one ``error: ...`` line and
exits like ``rediq pause``: 1 when nothing changed, 2 on a usage error. The original
``rediq cron APP ...`` form keeps working."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from .conftest import CLI, Done, Harness, cli, eventually

pytestmark = pytest.mark.timeout(90)

YEARLY = """
@app.cron("0 0 1 1 *", name="yearly")
@app.task(task_name="yearly")
async def yearly():
    pass
"""


async def positional(harness: Harness, *args: str) -> Done:
    """``rediq cron tasks:app ARGS``: the original form (the URL from the environment)."""
    done = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "cron", "tasks:app", *args],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Done(done.returncode, done.stdout, done.stderr)


async def _served(harness: Harness) -> None:
    harness.write_app(YEARLY)
    harness.start()

    async def stored() -> bool:
        done = await positional(harness, "--json")
        return done.code == 0 and [s["name"] for s in done.json()] == ["yearly"]

    await eventually(stored, "the schedule to be stored by the worker")


async def test_cron_takes_the_target_options(harness: Harness) -> None:
    await _served(harness)
    by_url = await cli(harness, "cron", "--json")  # --redis-url URL --namespace NS
    by_app = await cli(harness, "cron", "--json", app=True)  # --app tasks:app
    original = await positional(harness, "--json")
    assert by_url.code == by_app.code == original.code == 0, (by_url, by_app, original)
    assert by_url.json() == by_app.json() == original.json()
    done = await cli(harness, "cron", "pause", "yearly", app=True)
    assert (done.code, done.out.strip()) == (0, "schedule 'yearly' paused"), done


async def test_pausing_twice_is_exit_1_like_rediq_pause(harness: Harness) -> None:
    await _served(harness)
    assert (await cli(harness, "cron", "pause", "yearly")).code == 0
    again = await cli(harness, "cron", "pause", "yearly")
    assert again.code == 1, again
    assert again.err.strip() == "error: schedule 'yearly' was already paused", again
    assert (await cli(harness, "cron", "resume", "yearly")).code == 0
    again = await cli(harness, "cron", "resume", "yearly")
    assert again.code == 1, again
    assert again.err.strip() == "error: schedule 'yearly' was not paused", again


async def test_errors_are_one_line_not_a_box(harness: Harness) -> None:
    await _served(harness)
    unknown = await cli(harness, "cron", "pause", "nope")
    assert unknown.code == 1, unknown
    assert unknown.err.strip() == "error: no schedule named 'nope' is stored", unknown
    bad_app = await cli(harness, "cron", "--app", "nosuch:app", target=False)
    assert bad_app.code == 2 and bad_app.err.startswith("error: "), bad_app
    assert "╭" not in bad_app.err and bad_app.err.count("\n") == 1, bad_app
