"""``rediq worker --processes N``: a supervisor process running N worker processes.

Each child is an ordinary ``rediq worker`` with the same options (it registers itself and
leases on its own); the supervisor only starts them, restarts one that dies (with backoff,
so a crash loop does not spin), and forwards signals with the worker's semantics: the
first SIGINT/SIGTERM asks every child to stop gracefully, a second one to stop at once.
It exits 0 when every child stopped with 0, else 1.

Plugins give each child its own arguments and environment through the
``rediq_prepare_worker_process`` hook (e.g. only the first child serves an HTTP port);
``rediq worker`` has already called ``rediq_configure_worker`` in this process, where a
plugin refuses what no child could do (a busy port is an error, not N restarts).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

from .. import defaults

__all__ = ["PrepareProcess", "run_processes", "strip_option", "strip_processes_option"]

#: ``prepare(slot, processes, argv, env)``: adjusts one child's ``rediq`` arguments and
#: environment in place (the plugin host's ``prepare_worker_process``).
PrepareProcess = Callable[[int, int, list[str], dict[str, str]], None]

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


class _Supervisor:
    def __init__(self, argv: list[str], processes: int, prepare: PrepareProcess | None) -> None:
        self.argv = strip_processes_option(argv)
        self.processes = processes
        self.prepare = prepare
        self.children: dict[int, tuple[int, subprocess.Popen[bytes], float]] = {}
        self.signals = 0
        self.failures = 0

    def start(self, slot: int) -> None:
        argv, env = list(self.argv), dict(os.environ)
        if self.prepare is not None:
            self.prepare(slot, self.processes, argv, env)
        command = [sys.executable, "-c", "from rediq_core.cli import main; main()", *argv]
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
        return 0 if self.failures == 0 else 1


def run_processes(argv: list[str], processes: int, prepare: PrepareProcess | None = None) -> int:
    """Supervise ``processes`` worker processes running ``argv`` (minus ``--processes``),
    each started with the arguments and environment ``prepare`` leaves."""
    return _Supervisor(argv, processes, prepare).run()
