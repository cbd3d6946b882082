"""The command line: bad APP, the seed's ``rediq APP`` form, --burst, log formats."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import pytest

from rediq_core.cli.worker_cmd import redact_url

from .conftest import CLI, Harness

pytestmark = pytest.mark.timeout(60)

ADD = """
@app.task
async def add(a, b):
    import logging
    logging.getLogger("user").info("adding %s and %s", a, b)
    return a + b
"""


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosuchmodule:app", "cannot import module 'nosuchmodule'"),
        ("tasks:missing", "'tasks:missing' is nothing, not a rediq.Rediq app"),
        ("tasks", "is not of the form module:attribute"),
    ],
)
def test_bad_app_is_a_one_line_error(harness: Harness, spec: str, message: str) -> None:
    harness.write_app(ADD)
    done = subprocess.run(
        [*CLI, "worker", spec],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


async def test_seed_form_burst_and_json_logs(harness: Harness, tmp_path: Path) -> None:
    m = harness.write_app(ADD)
    handles = [await m.add(n, 1).enqueue() for n in range(5)]
    log_file = tmp_path / "worker.jsonl"
    worker = harness.start(
        "--burst", "--log-format", "json", "--log-file", str(log_file), app="tasks:app", ready=False
    )
    assert worker.wait_exit(30) == 0
    assert [await h.result(timeout=5) for h in handles] == [1, 2, 3, 4, 5]
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    user = [r for r in records if r["logger"] == "user"]
    assert len(user) == 5 and all(r["task_name"] == "add" and r["task_id"] for r in user)
    assert {r["task_id"] for r in user} == {h.id for h in handles}
    assert any("burst mode" in r["message"] for r in records)

    # The original `rediq APP [options]` form, also in burst mode (nothing left to do).
    done = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "tasks:app", "--redis-url", harness.url, "--burst"],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "ready: consuming default" in done.stderr


def test_banner_hides_the_password() -> None:
    assert redact_url("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://:secret@host/0") == "redis://:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


async def test_reload_restarts_the_worker_on_code_changes(harness: Harness) -> None:
    harness.write_app(ADD)
    worker = harness.start("--reload")
    # Rewriting the module is a code change: the worker restarts and runs the new code.
    m = harness.write_app(ADD + "\n@app.task\nasync def mul(a, b):\n    return a * b\n")
    worker.wait_for(r"tasks\.py changed, restarting the worker", timeout=20)
    worker.wait_for(r"ready: consuming", count=2, timeout=30)
    assert await (await m.mul(6, 7).enqueue()).result(timeout=10) == 42
    worker.signal(signal.SIGTERM)  # the supervisor stops the worker gracefully
    assert worker.wait_exit(30) == 0


@pytest.mark.parametrize("debug", [False, True])
def test_an_error_while_importing_the_app_names_file_and_line(
    harness: Harness, debug: bool
) -> None:
    (harness.dir / "helpers.py").write_text("def settings():\n    return {}['missing_key']\n")
    (harness.dir / "broken.py").write_text(
        "from rediq import Rediq\nimport helpers\n\napp = Rediq()\nCONFIG = helpers.settings()\n"
    )
    (harness.dir / "typo.py").write_text("from rediq import Rediq\napp = Rediq(\n")
    options = ["--log-level", "debug"] if debug else []
    done = subprocess.run(
        [*CLI, "worker", "broken:app", *options],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot import module 'broken': KeyError: 'missing_key'" in done.stderr
    assert f'File "{harness.dir / "helpers.py"}", line 2' in done.stderr
    assert "return {}['missing_key']" in done.stderr
    if debug:  # the whole chain, from the user's module down, without importlib frames
        assert "Traceback (most recent call last)" in done.stderr
        assert f'File "{harness.dir / "broken.py"}", line 5, in <module>' in done.stderr
        assert "frozen importlib" not in done.stderr
    else:
        assert "Traceback" not in done.stderr and "--log-level debug" in done.stderr

    syntax = subprocess.run(
        [*CLI, "worker", "typo:app", *options],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert syntax.returncode == 2
    assert "SyntaxError" in syntax.stderr and f"{harness.dir / 'typo.py'}" in syntax.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["worker", "tasks:app", "--bogus"], "No such option '--bogus'"),  # parsing
        (["worker", "nosuchmodule:app"], "cannot import module 'nosuchmodule'"),  # start
        (["tasks:app", "--worker-task-concurrency", "0"], "Invalid value"),  # seed form
        (  # after the worker ran
            ["worker", "tasks:app", "--redis-url", "redis://127.0.0.1:1/0", "--fail-fast"],
            "worker stopped: BrokerUnavailableError",
        ),
    ],
)
def test_a_worker_run_draws_its_errors_with_rich_click(
    harness: Harness, args: list[str], message: str
) -> None:
    """A worker run parses its command line with plain click (rich-click stays out of a
    running worker's memory), yet every error looks as rich-click draws it elsewhere."""
    harness.write_app(ADD)
    done = subprocess.run(
        [*CLI, *args], cwd=harness.dir, env=harness.env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode in (1, 2), done.stderr
    assert "╭─ Error" in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    if done.returncode == 2:  # a usage error names the command and its help
        assert "worker [OPTIONS] APP" in done.stderr and "worker -h' for help" in done.stderr
