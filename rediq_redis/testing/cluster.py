"""A Redis Cluster of 3 masters and 3 replicas (one per master), on loopback ports.

Slots are assigned and replicas attached by hand (``CLUSTER ADDSLOTSRANGE / MEET /
REPLICATE``), so no ``redis-cli`` is needed. With ``tls=`` certificates, every node
speaks TLS only, the cluster bus and replication included.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.crc import key_slot

from .certificates import Certificates
from .processes import TlsRedisServer, admin, cluster_port, command, wait_until
from .redis_server import RedisServer

__all__ = ["ClusterTopology"]

SLOTS = 16384


class ClusterTopology:
    """3 masters + 3 replicas (``replicas=False``: masters only). ``node_timeout_ms`` is
    how long a master must be unreachable before its replica takes over."""

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: bool = True,
        node_timeout_ms: int = 1000,
        extra_args: tuple[str, ...] = (),
        tls: Certificates | None = None,
    ) -> None:
        self.tls = tls
        self.master_count = masters
        self.with_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = extra_args
        self.servers: list[RedisServer] = []

    def _node(self) -> RedisServer:
        args = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # the other shards keep serving while one fails over
            "--cluster-require-full-coverage",
            "no",
            "--cluster-replica-validity-factor",
            "0",
            *self.extra_args,
        )
        if self.tls is not None:
            return TlsRedisServer(
                self.tls, port=cluster_port(), extra_args=(*args, "--tls-cluster", "yes")
            )
        return RedisServer(port=cluster_port(), extra_args=args)

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
            return all(
                len(command(admin(s), "CLUSTER", "NODES").splitlines()) == len(self.servers)
                for s in self.servers
            )

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

    def move_slot(
        self,
        slot: int,
        target: RedisServer,
        *,
        batch: int = 10,
        between: Callable[[], None] | None = None,
    ) -> None:
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
            command(admin(source), "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            if first and between is not None:
                between()
            first = False
        for server in self.masters():
            command(admin(server), "CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def wait_promoted(self, replica: RedisServer, timeout_s: float = 30.0) -> None:
        wait_until(
            lambda: self.role(replica) == "master",
            f"replica on port {replica.port} promoted to master",
            timeout_s,
        )

    def url(self, *, scheme: str | None = None) -> str:
        scheme = scheme or ("rediss+cluster" if self.tls else "redis+cluster")
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.servers[: self.master_count])
        return f"{scheme}://{hosts}"

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> ClusterTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
