"""An idle worker imports nothing it does not use (issue 20, "a lighter worker").

``rediq worker --burst`` on an empty queue starts (plugins loaded, banner printed, worker
registered, startup and shutdown events fired) and exits; the modules it imported are
written at exit. The optional plugins' heavy packages, rich and rich-click (the banner and
logs are plain text when stderr is not a terminal; the command line is parsed by plain
click), the memory broker, the cron code of an app without schedules and the Redis
broker's operator-only modules must not be among them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import Harness

#: Modules an idle worker of a ``redis://`` app without --metrics-port never needs.
NOT_IMPORTED = (
    "prometheus_client",
    "rediq_prometheus.metrics",
    "rediq_prometheus.server",
    "opentelemetry.propagate",  # redis-py may import the OpenTelemetry SDK on its own
    "jinja2",
    "starlette",
    "uvicorn",
    "python_multipart",
    "rediq_dashboard.command",
    "rich",
    "rediq_memory.broker",
    "rediq_memory.store",
    "rediq_core.cli.plugins_cmd",
    "rich_click",  # the command line is parsed by plain click; rich-click draws help/errors
    "rediq_core.crontab",  # no schedules: neither the parser nor the scheduler
    "zoneinfo",
    "rediq_core.worker.cron",
    "rediq_redis.doctor",  # operator-only parts of the Redis broker
    "rediq_redis.operate",
    "rediq_redis.cron",
    "pickle",  # a json app
)

DUMP_MODULES_AT_EXIT = """
import atexit, json, sys
path = sys.argv.pop(1)
atexit.register(lambda: open(path, "w").write(json.dumps(sorted(sys.modules))))
from rediq_core.cli import main
main()
"""


DUMP = [sys.executable, "-c", DUMP_MODULES_AT_EXIT]


def test_an_idle_worker_imports_only_what_it_uses(harness: Harness) -> None:
    harness.write_app("@app.task\nasync def noop():\n    return None\n")
    dump = harness.dir / "modules.json"
    done = subprocess.run(
        [*DUMP, str(dump), "worker", "tasks:app", "--redis-url", harness.url, "--burst"],
        cwd=harness.dir,
        env=harness.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "  mode        burst" in done.stderr, done.stderr  # the banner, in plain text
    modules = set(json.loads(dump.read_text()))
    assert "rediq_core.worker" in modules and "rediq_prometheus.plugin" in modules
    imported = sorted(
        name for name in modules if any(name == m or name.startswith(m + ".") for m in NOT_IMPORTED)
    )
    assert imported == [], f"an idle worker imported {imported}"
