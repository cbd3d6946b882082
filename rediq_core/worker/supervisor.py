"""``rediq worker --processes N``: a supervisor process running N worker processes.

Each child is an ordinary ``rediq worker`` with the same options (it registers itself and
leases on its own); the supervisor only starts them, restarts one that dies (with backoff,
so a crash loop does not spin), and forwards signals with the worker's semantics: the
first SIGINT/SIGTERM asks every child to stop gracefully, a second one to stop at once.
It exits 0 when every child stopped with 0, else 1.

With ``--metrics-port`` (or ``REDIQ_METRICS_PORT``) only the first child serves /metrics,
and every child writes its samples into one prometheus_client multiprocess directory (a
temporary one unless ``PROMETHEUS_MULTIPROC_DIR`` is set), so the one endpoint reports the
sum of all worker processes. ``rediq worker`` checks that the port can be served before
it starts the supervisor (:mod:`rediq_core.metrics_port`): a busy port is an error, not N restarts.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from .. import defaults

__all__ = ["run_processes", "strip_processes_option"]

log = logging.getLogger("rediq.worker.supervisor")

#: A child that dies sooner than this after starting counts as a crash loop (backoff grows).
_HEALTHY_AFTER_S = 10.0


def strip_option(argv: list[str], option: str) -> list[str]:
    """The command line without ``OPTION VALUE`` / ``OPTION=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def strip_processes_option(argv: list[str]) -> list[str]:
    """The command line without ``--processes N`` / ``--processes=N``."""
    return strip_option(argv, "--processes")


def _serves_metrics(argv: list[str]) -> bool:
    given = any(a == "--metrics-port" or a.startswith("--metrics-port=") for a in argv)
    return given or bool(os.environ.get(defaults.ENV_METRICS_PORT))


class _Supervisor:
    def __init__(self, argv: list[str], processes: int) -> None:
        self.command = [
            sys.executable,
            "-c",
            "from rediq_core.cli import main; main()",
            *strip_processes_option(argv),
        ]
        self.processes = processes
        self.metrics = _serves_metrics(argv)
        self.metrics_dir: str | None = None
        if self.metrics and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.metrics_dir = tempfile.mkdtemp(prefix="rediq-metrics-")
        self.children: dict[int, tuple[int, subprocess.Popen[bytes], float]] = {}
        self.signals = 0
        self.failures = 0

    def start(self, slot: int) -> None:
        command, env = self.command, dict(os.environ)
        if self.metrics:
            if self.metrics_dir:
                env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
            if slot > 0:  # one endpoint, serving the sum of every process
                command = strip_option(command, "--metrics-port")
                env.pop(defaults.ENV_METRICS_PORT, None)
        child = subprocess.Popen(command, env=env)
        self.children[child.pid] = (slot, child, time.monotonic())
        log.info("started worker process %d (pid %d)", slot, child.pid)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        how = "gracefully" if self.signals == 1 else "at once"
        log.warning(
            "%s: stopping %d worker process(es) %s",
            signal.Signals(signum).name,
            len(self.children),
            how,
        )
        for _, child, _ in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.on_signal)
        for slot in range(self.processes):
            self.start(slot)
        pause = defaults.WORKER_RECONNECT_MIN_S
        while self.children:
            pid, status = os.wait()  # signals run their handler and the wait goes on
            if pid not in self.children:
                continue
            slot, child, started = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            child.returncode = code
            if self.signals:
                self.failures += code != 0
                continue
            log.error(
                "worker process %d (pid %d) exited with %d; restarting it in %.1f s",
                slot,
                pid,
                code,
                pause,
            )
            time.sleep(pause)  # crash-loop back-off of the supervisor, not a poll
            pause = (
                defaults.WORKER_RECONNECT_MIN_S
                if time.monotonic() - started > _HEALTHY_AFTER_S
                else min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)
            )
            if not self.signals:
                self.start(slot)
        if self.metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        return 0 if self.failures == 0 else 1


def run_processes(argv: list[str], processes: int) -> int:
    """Supervise ``processes`` worker processes running ``argv`` (minus ``--processes``)."""
    return _Supervisor(argv, processes).run()
