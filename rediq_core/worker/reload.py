"""``rediq worker --reload``: run the worker in a child process and restart it (gracefully,
SIGTERM) whenever a ``.py`` file under the current directory changes. Development only;
needs the ``watchdog`` package."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
from types import FrameType

__all__ = ["run_with_reload"]


def run_with_reload(argv: list[str]) -> int:
    try:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:
        print("--reload needs the watchdog package: pip install 'rediq[reload]'", file=sys.stderr)
        return 2
    changes: queue.Queue[str] = queue.Queue()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            path = os.fsdecode(event.src_path)
            if path.endswith(".py") and event.event_type in ("modified", "created", "moved"):
                changes.put(path)

    observer = Observer()
    observer.schedule(Handler(), os.getcwd(), recursive=True)
    observer.start()
    child_argv = [
        sys.executable,
        "-c",
        "from rediq_core.cli import main; main()",
        *[a for a in argv[1:] if a != "--reload"],
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        changes.put("")

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            child = subprocess.Popen(child_argv)
            changed = changes.get()  # blocks until a change or a signal
            child.send_signal(signal.SIGTERM)
            status = child.wait()
            if stopping:
                return status
            print(f"rediq: {changed} changed, restarting the worker", file=sys.stderr)
            while not changes.empty():
                changes.get_nowait()
    finally:
        observer.stop()
        observer.join()
