"""Broker URLs: which Redis topology a URL names, and the URL as it may be shown.

=============================================  ==========================================
``redis://[user:pass@]host:port/db``           one server (``rediss://``: over TLS)
``unix:///path/to/redis.sock?db=0``            one server on a unix socket
``redis+sentinel://[user:pass@]h1:p1,h2:p2/service[/db]``
                                               the master of ``service``, found through
                                               Sentinel (``rediss+sentinel://``: TLS to
                                               the sentinels and the servers)
``redis+cluster://[user:pass@]h1:p1,h2:p2``    a Redis Cluster, from any of its nodes
                                               (``rediss+cluster://``: over TLS)
=============================================  ==========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from rediq_core.errors import BrokerError

__all__ = ["SCHEMES", "Kind", "Topology", "mask_url", "parse_url"]


class Kind(Enum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


#: Every URL scheme of the Redis broker, and the topology it names.
SCHEMES: dict[str, Kind] = {
    "redis": Kind.STANDALONE,
    "rediss": Kind.STANDALONE,
    "unix": Kind.STANDALONE,
    "redis+sentinel": Kind.SENTINEL,
    "rediss+sentinel": Kind.SENTINEL,
    "redis+cluster": Kind.CLUSTER,
    "rediss+cluster": Kind.CLUSTER,
}

_PASSWORD = re.compile(r"^(?P<scheme>[^:/]+://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    return _PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


@dataclass(frozen=True, slots=True)
class Topology:
    """A parsed multi-host URL (Sentinel or Cluster; one-server URLs go to redis-py)."""

    kind: Kind
    url: str
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    #: Sentinel only: the monitored service and the database number.
    service: str = ""
    db: int = 0

    @property
    def shown(self) -> str:
        return mask_url(self.url)


def _hosts(netloc: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    found: list[tuple[str, int]] = []
    for part in netloc.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host:
            host, port = port, str(default_port)
        try:
            found.append((host.strip("[]"), int(port)))
        except ValueError:
            raise BrokerError(f"{mask_url(url)}: {part!r} is not host:port") from None
    if not found or not all(h for h, _ in found):
        raise BrokerError(f"{mask_url(url)}: name at least one host:port")
    return tuple(found)


def parse_url(url: str) -> Topology:
    """What ``url`` names; :class:`BrokerError` (with the password masked) if it is not a
    URL of this broker."""
    scheme = url.partition("://")[0].lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise BrokerError(f"{mask_url(url)}: unknown scheme; the Redis broker takes {known}")
    tls = scheme.startswith("rediss")
    if kind is Kind.STANDALONE:
        return Topology(kind, url, tls)
    rest = url.partition("://")[2]
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        userinfo, hostpart = "", rest
    netloc, _, path = hostpart.partition("/")
    path = path.split("?", 1)[0]
    username: str | None = None
    password: str | None = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if kind is Kind.CLUSTER:
        if path.strip("/") not in ("", "0"):
            raise BrokerError(f"{mask_url(url)}: a Redis Cluster has database 0 only")
        return Topology(kind, url, tls, _hosts(netloc, 6379, url), username, password)
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise BrokerError(
            f"{mask_url(url)}: name the Sentinel service after the hosts,"
            " e.g. redis+sentinel://host1:26379,host2:26379/mymaster/0"
        )
    try:
        number = int(db or 0)
    except ValueError:
        raise BrokerError(f"{mask_url(url)}: database {db!r} is not a number") from None
    return Topology(
        kind, url, tls, _hosts(netloc, 26379, url), username, password, unquote(service), number
    )
