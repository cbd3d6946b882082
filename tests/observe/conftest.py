"""Observability tests: real workers against a throwaway redis-server (the ``harness``
fixture of tests/worker/conftest.py) and a real headless browser for the dashboard."""

from __future__ import annotations

import re
import urllib.request

from tests.worker.conftest import CLI, Harness, WorkerProcess, harness  # noqa: F401

__all__ = ["CLI", "Harness", "WorkerProcess", "metrics_url", "scrape"]


def metrics_url(worker: WorkerProcess) -> str:
    """The /metrics address a worker started with ``--metrics-port 0`` logged."""
    line = worker.wait_for(r"serving Prometheus metrics on http://", timeout=30)[0]
    found = re.search(r"(http://[\d.]+:\d+/metrics)", line)
    assert found, line
    return found.group(1)


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, keyed by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
