"""Observability tests: real workers against a throwaway redis-server (the ``harness``
fixture of tests/worker/conftest.py) and a real headless browser for the dashboard."""

from __future__ import annotations

import re
import urllib.request

from tests.worker.conftest import CLI, Harness, WorkerProcess, harness  # noqa: F401

__all__ = [
    "CLI",
    "Harness",
    "WorkerProcess",
    "free_port",
    "metrics_url",
    "scrape",
    "start_dashboard",
    "wait_http",
]


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


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Block until ``url`` answers at all (any status); fail clearly otherwise."""
    import time
    import urllib.error

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s: {exc}") from None
            time.sleep(0.05)  # re-check interval of a bounded wait


def start_dashboard(h: Harness, *options: str, env: dict[str, str] | None = None) -> str:
    """Run ``rediq dashboard --redis-url ... --namespace ...`` on a free loopback port
    (stopped at teardown with the harness's workers); return its base URL."""
    port = free_port()
    process = WorkerProcess(
        [
            "dashboard",
            "--redis-url",
            h.url,
            "--namespace",
            h.namespace,
            "--port",
            str(port),
            *options,
        ],
        h.dir,
        {**h.env, **(env or {})},
    )
    h.workers.append(process)
    process.wait_for(r"rediq dashboard on http://127\.0\.0\.1:", timeout=30)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/static/dashboard.css")
    return base
