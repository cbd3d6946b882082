"""Redis Sentinel on loopback ports: a master, a replica and three sentinels
(``redis-server --sentinel``), quorum 2. With ``tls=`` certificates, the servers and
the sentinels speak TLS only."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from redis import Redis

from .certificates import Certificates
from .processes import TlsRedisServer, admin, command, tls_client, wait_until
from .redis_server import RedisServer, _binary, free_port

__all__ = ["SentinelProcess", "SentinelTopology"]


class SentinelProcess:
    """One ``redis-server --sentinel`` process monitoring ``service`` at ``master_port``."""

    def __init__(
        self,
        *,
        service: str,
        master_port: int,
        quorum: int,
        down_after_ms: int,
        tls: Certificates | None = None,
        password: str | None = None,
    ) -> None:
        self.tls = tls
        self.password = password
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rediq-sentinel-"))
        self.config = self.dir / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    *self._listen(),
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    f"sentinel monitor {service} 127.0.0.1 {master_port} {quorum}",
                    f"sentinel down-after-milliseconds {service} {down_after_ms}",
                    f"sentinel failover-timeout {service} {max(down_after_ms * 4, 2000)}",
                    f"sentinel parallel-syncs {service} 1",
                    *self._auth(service),
                    "",
                ]
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def _auth(self, service: str) -> list[str]:
        if self.password is None:
            return []
        return [
            f"requirepass {self.password}",  # clients of this sentinel
            f"sentinel auth-pass {service} {self.password}",  # the servers
            f"sentinel sentinel-pass {self.password}",
        ]  # the other sentinels

    def _listen(self) -> list[str]:
        if self.tls is None:
            return [f"port {self.port}"]
        return [
            "port 0",
            f"tls-port {self.port}",
            f"tls-cert-file {self.tls.server.cert}",
            f"tls-key-file {self.tls.server.key}",
            f"tls-ca-cert-file {self.tls.ca.cert}",
            "tls-replication yes",
        ]

    def start(self) -> SentinelProcess:
        self.process = subprocess.Popen(
            [_binary(), str(self.config), "--sentinel", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: self.client().ping() is True, f"sentinel on port {self.port} answering PING", 10
        )
        return self

    def client(self) -> Redis:
        if self.tls is not None:
            return tls_client(self.tls, self.port, self.password)
        return Redis(port=self.port, socket_timeout=5, password=self.password)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelTopology:
    """A master, a replica and three sentinels (quorum 2) watching service ``service``."""

    def __init__(
        self,
        *,
        service: str = "rediq",
        down_after_ms: int = 1000,
        tls: Certificates | None = None,
        password: str | None = None,
    ) -> None:
        self.tls = tls
        self.password = password
        self.service = service
        self.down_after_ms = down_after_ms
        self.servers: list[RedisServer] = []
        self.sentinels: list[SentinelProcess] = []

    def start(self) -> SentinelTopology:
        try:
            master = self._server(
                ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
            ).start()
            self.servers.append(master)
            replica = self._server(("--replicaof", "127.0.0.1", str(master.port))).start()
            self.servers.append(replica)
            wait_until(
                lambda: admin(replica).info("replication").get("master_link_status") == "up",
                "replica in sync with the master",
            )
            for _ in range(3):
                self.sentinels.append(
                    SentinelProcess(
                        service=self.service,
                        master_port=master.port,
                        quorum=2,
                        down_after_ms=self.down_after_ms,
                        tls=self.tls,
                        password=self.password,
                    ).start()
                )
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _server(self, args: tuple[str, ...]) -> RedisServer:
        if self.password is not None:
            args = (*args, "--requirepass", self.password, "--masterauth", self.password)
        if self.tls is not None:
            return TlsRedisServer(self.tls, extra_args=args)
        return RedisServer(extra_args=args)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Every sentinel knows the replica and the other two sentinels."""

        def ready() -> bool:
            for sentinel in self.sentinels:
                client = sentinel.client()
                if len(command(client, "SENTINEL", "REPLICAS", self.service)) < 1:
                    return False
                others = command(client, "SENTINEL", "SENTINELS", self.service)
                if len(others) < len(self.sentinels) - 1:
                    return False
            return True

        wait_until(ready, "sentinels see the replica and each other", timeout_s)

    def master(self) -> RedisServer:
        port = self._named_port(self.sentinels[0])
        for server in self.servers:
            if server.port == port:
                return server
        raise LookupError(f"sentinels name an unknown master on port {port}")

    def _named_port(self, sentinel: SentinelProcess) -> int:
        reply = command(sentinel.client(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(reply[1])

    def wait_failover(self, old: RedisServer, timeout_s: float = 30.0) -> RedisServer:
        """Wait until every live sentinel names a new master, and that server is a master."""

        def moved() -> bool:
            names = {self._named_port(s) for s in self.sentinels if s.process is not None}
            if len(names) != 1 or old.port in names:
                return False
            server = next(s for s in self.servers if s.port in names)
            return bool(admin(server).info("replication")["role"] == "master")

        wait_until(moved, f"sentinels promote a new master in place of port {old.port}", timeout_s)
        return self.master()

    def wait_replica(
        self, server: RedisServer, timeout_s: float = 150.0, convert_s: float = 60.0
    ) -> None:
        """Wait until ``server`` (say, a restarted old master) replicates the master.

        The sentinels convert it on their own schedule: two INFO rounds 10 s apart see
        it report itself a master, then a full sync (about 20 s here). A sentinel whose
        timer was late by 2 s (a loaded machine) enters TILT mode and takes no action for
        30 s, once or more; and once in a while, on a loaded machine, no sentinel lists
        the returning server at all. So after ``convert_s`` the server is told to
        replicate the master itself (``REPLICAOF``, what an operator would do; a warning
        says what the sentinels saw), and the wait goes on. A timeout says what the
        sentinels see."""

        def following() -> bool:
            info = admin(server).info("replication")
            return bool(info["role"] == "slave" and info.get("master_link_status") == "up")

        what = f"server on port {server.port} replicating the master"
        try:
            wait_until(following, what, convert_s)
            return
        except TimeoutError:
            views = self._views(server)
        print(
            f"warning: the sentinels did not convert the server on port {server.port} within"
            f" {convert_s} s (they see: {views}); it is told to replicate the master",
            file=sys.stderr,
        )
        command(admin(server), "REPLICAOF", "127.0.0.1", str(self.master().port))
        try:
            wait_until(following, what, timeout_s - convert_s)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; the sentinels see: {self._views(server)}") from None

    def _views(self, server: RedisServer) -> list[str]:
        """Each live sentinel's view of ``server``: its flags and reported role, or why
        there is none (TILT mode, not listed, unreachable)."""
        views = []
        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            try:
                client = sentinel.client()
                tilt = _sentinel_info(client).get("sentinel_tilt")
                replicas = command(client, "SENTINEL", "REPLICAS", self.service)
            except Exception as error:  # a diagnostic, never a failure
                views.append(f"sentinel {sentinel.port}: unreachable ({error})")
                continue
            entry = next(
                (_pairs(r) for r in replicas if _pairs(r).get("port") == str(server.port)), None
            )
            seen = (
                "not listed"
                if entry is None
                else ", ".join(
                    f"{k}={entry.get(k)}" for k in ("flags", "role-reported", "master-link-status")
                )
            )
            views.append(f"sentinel {sentinel.port} (tilt={tilt}): {seen}")
        return views

    def url(self, db: int = 0, *, scheme: str | None = None) -> str:
        scheme = scheme or ("rediss+sentinel" if self.tls else "redis+sentinel")
        auth = f":{self.password}@" if self.password is not None else ""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{scheme}://{auth}{hosts}/{self.service}/{db}"

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        for server in self.servers:
            server.close()

    def __enter__(self) -> SentinelTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sentinel_info(client: Redis) -> dict[str, Any]:
    """A sentinel's INFO as a dict."""
    return dict(client.info())


def _pairs(reply: Any) -> dict[str, str]:
    """A sentinel's flat ``[name, value, ...]`` reply (or redis-py's dict of it) as a dict."""
    pairs = (
        list(reply.items())
        if isinstance(reply, dict)
        else list(zip(reply[::2], reply[1::2], strict=True))
    )
    return {_text(k): _text(v) for k, v in pairs}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
