"""The three observability plugins register through the ``rediq`` entry-point group,
switch on with their extras, and are listed as unavailable (with the pip command) without
them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.worker.conftest import CLI

BLOCK_IMPORTS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is blocked")
        return None
sys.meta_path.insert(0, Block())
from rediq_core.cli import main
main()
"""


def test_plugins_without_their_extras_are_listed_as_unavailable() -> None:
    blocked = {"prometheus_client", "opentelemetry", "starlette", "uvicorn", "jinja2"}
    code = BLOCK_IMPORTS.format(BLOCKED=blocked)
    done = subprocess.run(
        [sys.executable, "-c", code, "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["plugin"]: row for row in json.loads(done.stdout)}
    for name in ("prometheus", "otel", "dashboard"):
        assert rows[name]["status"] == f"unavailable: pip install 'rediq[{name}]'"
        assert rows[name]["events"] == [] and rows[name]["commands"] == []


def test_the_plugins_table_shows_the_pip_command_of_each_missing_extra() -> None:
    blocked = {"prometheus_client", "opentelemetry", "starlette", "uvicorn", "jinja2"}
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_IMPORTS.format(BLOCKED=blocked), "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, done.stderr
    for name in ("prometheus", "otel", "dashboard"):
        assert f"unavailable: pip install 'rediq[{name}]'" in done.stdout, done.stdout


def test_installed_plugins_are_available_and_register_their_hooks() -> None:
    done = subprocess.run([*CLI, "plugins", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {row["plugin"]: row for row in json.loads(done.stdout)}
    assert {rows[name]["status"] for name in ("prometheus", "otel", "dashboard")} == {"available"}
    assert rows["dashboard"]["commands"] == ["dashboard"]
    assert "after_task_attempt" in rows["prometheus"]["events"]
    assert "before_task_enqueue" in rows["otel"]["events"]
    assert rows["redis"]["status"] == "available"
