"""The seed tutorial runs unchanged, and the context table holds everywhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rediq_core.errors import TaskFailedError

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED_OPTIONS = [
    "--queue-name",
    "a",
    "--queue-name",
    "b",
    "--skip-default-queue",
    "--worker-name",
    "worker123",
    "--worker-queue-size",
    "200",
    "--worker-task-concurrency",
    "100",
    "--executor-pool-name",
    "process",
    "--executor-pool-size",
    "32",
    "--log-level",
    "info",
]

#: The seed's availability table: run_in_current_executor, info, groups, retried, result,
#: exception.
TABLE = {
    "task": "111100",
    "before_task_start": "111100",
    "before_task_retry": "111100",
    "after_task_success": "111110",
    "after_task_failure": "111101",
    "before_worker_startup": "100000",
    "after_worker_shutdown": "100000",
}

PROBE = """
import operator

async def row(where):
    flags = ""
    try:
        await run_in_current_executor(functools.partial(operator.add, 1, 2))
        flags += "1"
    except ContextUnavailableError:
        flags += "0"
    for accessor in (current_task_info, current_task_groups, current_task_retried,
                     current_task_result, current_task_exception):
        try:
            accessor()
            flags += "1"
        except ContextUnavailableError:
            flags += "0"
    out("ROW", where, flags)

for _event in EVENT_NAMES:
    async def _handler(_event=_event):
        await row(_event)
    app.event(event_name=_event)(_handler)

@app.task(task_retries=1)
async def probe(fail):
    await row("task")
    out("GROUPS", ",".join(current_task_groups()))
    if os.environ.get("POOL") == "thread":
        seen = await run_in_current_executor(current_task_info)
        out("IN-THREAD", seen.task_id == current_task_info().task_id)
    else:
        out("IN-PROCESS", await run_in_current_executor(os.getpid) != os.getpid())
    if fail:
        raise ValueError("asked to fail")
    return "ok"
"""


def test_seed_tutorial_runs_unchanged(harness: Harness, tmp_path: Path) -> None:
    log_file = tmp_path / "1.log"
    env = {**harness.env, "REDIQ_BACKOFF_BASE_MS": "20", "REDIQ_SIGNING_KEY": "k" * 32}
    worker = harness.start(
        *SEED_OPTIONS,
        "--log-file",
        str(log_file),
        app="mytasks:app",
        cwd=EXAMPLES,
        ready=False,
        env=env,
    )
    produced = subprocess.run(
        [sys.executable, "producer.py", "0.05"],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout.count("'simple_task finished'") == 3
    assert "failed as expected (task 'simple_task' exceeded its timeout of 50 ms)" in (
        produced.stdout
    )
    worker.signal(2)
    assert worker.wait_exit() == 0
    doomed = re.search(r"task (\w+): failed as expected", produced.stdout)
    assert doomed is not None
    lines = worker.lines
    # Seed order for the doomed task: before_task_start (TaskInfo), before_task_retry
    # prints 1, 2, 3, after_task_failure prints the exception; then current_task_result()
    # raises and is logged, never raised.
    mine = [i for i, line in enumerate(lines) if doomed.group(1) in line]
    assert "retried=0" in lines[mine[0]]
    failure = lines.index("task 'simple_task' exceeded its timeout of 50 ms")
    retries = [line for line in lines[mine[0] : failure] if line in ("1", "2", "3")]
    assert retries == ["1", "2", "3"]
    log = log_file.read_text()
    assert "after_task_failure handler after_task_failure raised" in log
    assert "current_task_result() is only available in after_task_success handlers" in log
    # Each successful task: before_task_start, the task's two prints, after_task_success.
    assert lines.count("simple_task finished") == 3
    assert lines.count("0") >= 3


@pytest.mark.parametrize("pool", ["thread", "process"])
async def test_context_table_in_every_place(harness: Harness, pool: str) -> None:
    m = harness.write_app(PROBE)
    worker = harness.start(
        "--executor-pool-name", pool, "--executor-pool-size", "2", env={"POOL": pool}
    )
    ok = await m.probe(False).groups("g1", "g2").enqueue()
    assert await ok.result(timeout=30) == "ok"
    bad = await m.probe(True).enqueue()
    with pytest.raises(TaskFailedError, match="asked to fail"):
        await bad.result(timeout=30)
    worker.signal(2)
    assert worker.wait_exit() == 0
    rows: dict[str, set[str]] = {}
    for line in worker.matching("^ROW "):
        _, where, flags = line.split()
        rows.setdefault(where, set()).add(flags)
    assert rows == {where: {flags} for where, flags in TABLE.items()}
    assert worker.matching("^GROUPS ") == ["GROUPS g1,g2", "GROUPS ", "GROUPS "]
    marker = "IN-THREAD True" if pool == "thread" else "IN-PROCESS True"
    assert len(worker.matching(f"^{marker}$")) == 3


def test_the_readme_tutorial_command_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_tutorial.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tutorial finished: producer exited 0, worker exited 0" in done.stdout
    assert done.stdout.count("'simple_task finished'") == 3
