"""Exactly once under faults: 5 real workers serve an every-second schedule for 60 s while
2 of them are SIGKILLed and restarted; every tick of the window runs exactly once.

The scenario lives in ``benchmarks/cron_exactly_once.py`` (which also reports lateness);
here it runs against the test suite's redis-server. About 65 s.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.cron_exactly_once import run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_each_tick_runs_exactly_once_while_workers_are_killed(
    tmp_path: Path, rediq_redis_url: str, rediq_namespace: str
) -> None:
    report = run_scenario(
        rediq_redis_url, tmp_path, rediq_namespace, workers=5, duration_s=60, kills=2
    )
    print("\n[measure] cron soak", json.dumps(asdict(report)))
    assert report.window_ticks >= 55, report
    assert not report.missed_ticks, f"ticks without a run: {report.missed_ticks}"
    assert not report.doubled_ticks, f"ticks that ran more than once: {report.doubled_ticks}"
    assert report.ticks_with_one_run == report.window_ticks
