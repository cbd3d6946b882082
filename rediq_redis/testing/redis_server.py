"""Throwaway ``redis-server`` processes on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "RedisServerMissing", "free_port"]

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it: `apt-get install redis-server`"
    " (Debian/Ubuntu), `brew install redis` (macOS), or set REDIQ_REDIS_SERVER to its path"
)


class RedisServerMissing(RuntimeError):
    """No ``redis-server`` binary is available."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary() -> str:
    named = os.environ.get("REDIQ_REDIS_SERVER")
    found = shutil.which(named) if named else shutil.which("redis-server")
    if not found:
        where = f"REDIQ_REDIS_SERVER={named!r} is not an executable. " if named else ""
        raise RedisServerMissing(where + INSTALL_HINT)
    return found


class RedisServer:
    """One ``redis-server`` child process; keeps its port across :meth:`restart`."""

    def __init__(self, *, port: int | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = _binary()
        self.port = port or free_port()
        self.extra_args = extra_args
        self.dir = Path(tempfile.mkdtemp(prefix="rediq-redis-"))
        self.unix_socket = self.dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def version(self) -> tuple[int, ...]:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        token = next(t for t in out.split() if t.startswith("v="))
        return tuple(int(part) for part in token[2:].split("."))

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(self.unix_socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server on port {self.port} exited at start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # up (and locked)
                        return
            except OSError:
                pass
            time.sleep(delay)  # start-up wait, not a hot path
            delay = min(delay * 2, 0.1)
        raise TimeoutError(f"redis-server on port {self.port} not ready after {timeout_s} s")

    def stop(self) -> None:
        """Terminate gracefully (SIGTERM) and wait."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server: everything in memory is gone."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, kill: bool = True) -> None:
        """Kill (or stop) and start again on the same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
