"""Real Redis topologies on loopback ports, built from the ``redis-server`` binary.

- :class:`ClusterTopology`: a Redis Cluster of 3 masters and 3 replicas (one per master),
  slots assigned and replicas attached by hand (``CLUSTER ADDSLOTSRANGE / MEET /
  REPLICATE``), so no ``redis-cli`` is needed.
- :class:`SentinelTopology`: one master, one replica and three sentinels
  (``redis-server --sentinel``).
- :class:`TlsRedisServer`: a server that speaks TLS only, with certificates from
  :class:`~rediq_core.testing.certificates.Certificates`.

Every wait is bounded and fails with a message saying what did not happen. Killing a
process is a real SIGKILL (:meth:`RedisServer.kill`).
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis import Redis
from redis.crc import key_slot

from .certificates import Certificates
from .redis_server import RedisServer, _binary, free_port

__all__ = [
    "ClusterTopology",
    "SentinelProcess",
    "SentinelTopology",
    "TlsRedisServer",
    "admin",
    "cluster_port",
    "command",
    "wait_until",
]

SLOTS = 16384


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Call ``condition`` until it is true; ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            if condition():
                return
        except (OSError, Exception):  # a node still starting or just killed
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout_s} s")
        time.sleep(delay)  # bounded wait on an external process
        delay = min(delay * 2, 0.1)


def cluster_port() -> int:
    """A free port below 55536 whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def admin(server: RedisServer) -> Redis:
    """A synchronous client of ``server`` through its unix socket (for the harness)."""
    return Redis(unix_socket_path=str(server.unix_socket), socket_timeout=5)


def command(client: Redis, *args: object) -> Any:
    """One command, as redis-py answers it (its generic entry point is untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


class ClusterTopology:
    """3 masters + 3 replicas (``replicas=False``: masters only). ``node_timeout_ms`` is
    how long a master must be unreachable before its replica takes over."""

    def __init__(self, *, masters: int = 3, replicas: bool = True,
                 node_timeout_ms: int = 1000, extra_args: tuple[str, ...] = ()) -> None:
        self.master_count = masters
        self.with_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = extra_args
        self.servers: list[RedisServer] = []

    def _node(self) -> RedisServer:
        port = cluster_port()
        server = RedisServer(port=port, extra_args=(
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # the other shards keep serving while one fails over
            "--cluster-require-full-coverage", "no",
            "--cluster-replica-validity-factor", "0",
            *self.extra_args,
        ))
        return server

    def start(self) -> ClusterTopology:
        try:
            count = self.master_count * (2 if self.with_replicas else 1)
            self.servers = [self._node().start() for _ in range(count)]
            self._assemble()
        except BaseException:
            self.close()
            raise
        return self

    def _assemble(self) -> None:
        masters = self.servers[: self.master_count]
        replicas = self.servers[self.master_count :]
        ids = [command(admin(s), "CLUSTER", "MYID").decode() for s in self.servers]
        step = SLOTS // self.master_count
        for i, server in enumerate(masters):
            last = SLOTS - 1 if i == self.master_count - 1 else (i + 1) * step - 1
            command(admin(server), "CLUSTER", "ADDSLOTSRANGE", i * step, last)
        first = admin(self.servers[0])
        for server in self.servers[1:]:
            command(first, "CLUSTER", "MEET", "127.0.0.1", server.port)

        def everyone_known() -> bool:
            return all(len(command(admin(s), "CLUSTER", "NODES").splitlines())
                       == len(self.servers) for s in self.servers)

        wait_until(everyone_known, "every cluster node knows every other")
        for replica, master_id in zip(replicas, ids, strict=False):
            command(admin(replica), "CLUSTER", "REPLICATE", master_id)
        self.wait_healthy()

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Every live node reports ``cluster_state:ok`` and every replica's link is up."""

        def healthy() -> bool:
            for server in self.live:
                client = admin(server)
                if b"cluster_state:ok" not in command(client, "CLUSTER", "INFO"):
                    return False
                info = client.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
            return True

        wait_until(healthy, "cluster healthy (state ok, replicas in sync)", timeout_s)

    @property
    def live(self) -> list[RedisServer]:
        return [s for s in self.servers if s.process is not None]

    def role(self, server: RedisServer) -> str:
        return str(admin(server).info("replication")["role"])

    def masters(self) -> list[RedisServer]:
        return [s for s in self.live if self.role(s) == "master"]

    def replica_of(self, master: RedisServer) -> RedisServer:
        for server in self.live:
            info = admin(server).info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == master.port:
                return server
        raise LookupError(f"no replica follows the master on port {master.port}")

    def master_of_slot(self, slot: int) -> RedisServer:
        for server in self.masters():
            for start, end, master, *_ in command(admin(server), "CLUSTER", "SLOTS"):
                if start <= slot <= end and int(master[1]) == server.port:
                    return server
        raise LookupError(f"no live master serves slot {slot}")

    def spread_queues(self, namespace: str, count: int) -> list[str]:
        """``count`` queue names of ``namespace`` whose slots go round the masters in turn
        (a queue lives in the slot of its hash tag ``{namespace:queue}``)."""
        masters = self.masters()
        found: list[str] = []
        index = 0
        while len(found) < count:
            name = f"q{index}"
            index += 1
            slot = key_slot(f"{{{namespace}:{name}}}".encode())
            if self.master_of_slot(slot) is masters[len(found) % len(masters)]:
                found.append(name)
        return found

    def node_id(self, server: RedisServer) -> str:
        return str(command(admin(server), "CLUSTER", "MYID").decode())

    def move_slot(self, slot: int, target: RedisServer, *, batch: int = 10,
                  between: Callable[[], None] | None = None) -> None:
        """Reshard: migrate ``slot`` with its keys to the master ``target``, as
        ``redis-cli --cluster reshard`` does (IMPORTING / MIGRATING, MIGRATE in batches
        of ``batch`` keys, then SETSLOT NODE everywhere). ``between()`` runs after the
        first batch moved, while the slot is split between the two nodes."""
        source = self.master_of_slot(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        command(admin(target), "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        command(admin(source), "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        first = True
        while keys := command(admin(source), "CLUSTER", "GETKEYSINSLOT", slot, batch):
            command(admin(source), "MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                    "KEYS", *keys)
            if first and between is not None:
                between()
            first = False
        for server in self.masters():
            command(admin(server), "CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def wait_promoted(self, replica: RedisServer, timeout_s: float = 30.0) -> None:
        wait_until(lambda: self.role(replica) == "master",
                   f"replica on port {replica.port} promoted to master", timeout_s)

    def url(self, *, scheme: str = "redis+cluster") -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.servers[: self.master_count])
        return f"{scheme}://{hosts}"

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> ClusterTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class SentinelProcess:
    """One ``redis-server --sentinel`` process monitoring ``service`` at ``master_port``."""

    def __init__(self, *, service: str, master_port: int, quorum: int,
                 down_after_ms: int, extra_lines: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rediq-sentinel-"))
        self.config = self.dir / "sentinel.conf"
        self.config.write_text("\n".join([
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.dir}",
            f"sentinel monitor {service} 127.0.0.1 {master_port} {quorum}",
            f"sentinel down-after-milliseconds {service} {down_after_ms}",
            f"sentinel failover-timeout {service} {max(down_after_ms * 4, 2000)}",
            f"sentinel parallel-syncs {service} 1",
            *extra_lines,
            "",
        ]))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        self.process = subprocess.Popen(
            [_binary(), str(self.config), "--sentinel", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: Redis(port=self.port, socket_timeout=1).ping() is True,
                   f"sentinel on port {self.port} answering PING", 10)
        return self

    def client(self) -> Redis:
        return Redis(port=self.port, socket_timeout=5, decode_responses=True)

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

    def __init__(self, *, service: str = "rediq", down_after_ms: int = 1000) -> None:
        self.service = service
        self.down_after_ms = down_after_ms
        self.servers: list[RedisServer] = []
        self.sentinels: list[SentinelProcess] = []

    def start(self) -> SentinelTopology:
        try:
            master = RedisServer(extra_args=("--repl-diskless-sync", "yes",
                                             "--repl-diskless-sync-delay", "0")).start()
            self.servers.append(master)
            replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(master.port),
                                              "--replica-priority", "100")).start()
            self.servers.append(replica)
            wait_until(lambda: admin(replica).info("replication").get(
                "master_link_status") == "up", "replica in sync with the master")
            for _ in range(3):
                self.sentinels.append(SentinelProcess(
                    service=self.service, master_port=master.port, quorum=2,
                    down_after_ms=self.down_after_ms).start())
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

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

        wait_until(moved, f"sentinels promote a new master in place of port {old.port}",
                   timeout_s)
        return self.master()

    def wait_replica(self, server: RedisServer, timeout_s: float = 30.0) -> None:
        """Wait until ``server`` (say, a restarted old master) replicates the master."""

        def following() -> bool:
            info = admin(server).info("replication")
            return bool(info["role"] == "slave" and info.get("master_link_status") == "up")

        wait_until(following, f"server on port {server.port} replicating the master",
                   timeout_s)

    def url(self, db: int = 0, *, scheme: str = "redis+sentinel") -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{scheme}://{hosts}/{self.service}/{db}"

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        for server in self.servers:
            server.close()

    def __enter__(self) -> SentinelTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class TlsRedisServer(RedisServer):
    """A redis-server that accepts TLS connections only (plus its unix socket, used for the
    readiness check). Clients must present a certificate signed by the test CA."""

    def __init__(self, certificates: Certificates, *, require_client_cert: bool = True) -> None:
        tls = certificates.server
        super().__init__(extra_args=(
            "--tls-port", "0",  # replaced in start(), once the port is known
            "--port", "0",
            "--tls-cert-file", str(tls.cert),
            "--tls-key-file", str(tls.key),
            "--tls-ca-cert-file", str(certificates.ca.cert),
            "--tls-auth-clients", "yes" if require_client_cert else "optional",
        ))
        self.certificates = certificates

    def start(self, timeout_s: float = 10.0) -> TlsRedisServer:
        args = list(self.extra_args)
        args[1] = str(self.port)
        self.extra_args = tuple(args)
        super().start(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        wait_until(lambda: admin(self).ping() is True,
                   f"TLS redis-server on port {self.port} answering PING", timeout_s)

    def url(self, db: int = 0) -> str:
        return f"rediss://localhost:{self.port}/{db}"
