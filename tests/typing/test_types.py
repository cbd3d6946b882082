"""mypy reads ``typed_app.py`` as a user of rediq would: results are typed end to end,
and misuse is reported. Each ``# expect: CODE`` mark must match one mypy error, and
mypy must report nothing else."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rediq

SAMPLE = Path(__file__).with_name("typed_app.py")
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<text>.*)\[(?P<code>[a-z-]+)\]$")


def expected_errors() -> set[tuple[int, str]]:
    marks = set()
    for number, line in enumerate(SAMPLE.read_text().splitlines(), start=1):
        found = re.search(r"# expect: ([a-z-]+)$", line)
        if found:
            marks.add((number, found.group(1)))
    return marks


@pytest.mark.timeout(300)
def test_results_are_typed_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is part of the test extra")
    sample = tmp_path / "typed_app.py"  # checked outside the source tree, as a user's file
    sample.write_text(SAMPLE.read_text())
    env = dict(os.environ)
    source_root = Path(rediq.__file__).resolve().parents[1]
    if (source_root / "pyproject.toml").exists():  # an editable install: mypy cannot see it
        env["MYPYPATH"] = str(source_root)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            "",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports",
            "silent",
            "--hide-error-context",
            "--no-error-summary",
            "--show-error-codes",
            sample.name,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    found = set()
    for line in run.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            found.add((int(match["line"]), match["code"]))
        else:
            assert ": note: " in line, f"unexpected mypy output: {line}\n{run.stdout}"
    expected = expected_errors()
    assert len(expected) >= 5
    assert found == expected, (
        f"missing errors: {sorted(expected - found)}; unexpected: {sorted(found - expected)}"
        f"\nmypy said:\n{run.stdout}{run.stderr}"
    )
