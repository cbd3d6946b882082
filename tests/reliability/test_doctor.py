"""``rediq doctor`` against real servers configured well and badly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from rediq_redis.testing import RedisServer

CLI = [sys.executable, "-c", "from rediq_core.cli import main; main()"]


def doctor(url: str, *extra: str) -> tuple[int, dict[str, dict[str, str]], str]:
    done = subprocess.run(
        [*CLI, "doctor", "--redis-url", url, "--json", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    document = json.loads(done.stdout) if done.stdout else {"checks": []}
    return done.returncode, {c["name"]: c for c in document["checks"]}, done.stderr


def test_a_well_configured_server_passes(
    rediq_redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = rediq_redis_server_factory(
        extra_args=(
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--maxmemory-policy",
            "noeviction",
        )
    )
    status, checks, _ = doctor(server.url())
    assert status == 0, checks
    assert checks["persistence"]["status"] == "ok"
    assert "restart loses nothing acknowledged" in checks["persistence"]["advice"]
    assert {checks[n]["status"] for n in ("server_version", "clock_skew", "latency", "acl")} == {
        "ok"
    }
    assert checks["topology"]["status"] == "info"  # a single server: worth knowing


def test_eviction_and_no_persistence_need_attention(
    rediq_redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = rediq_redis_server_factory(extra_args=("--maxmemory-policy", "allkeys-lru"))
    status, checks, _ = doctor(server.url())
    assert status == 1
    assert checks["maxmemory_policy"]["status"] == "warn"
    assert "silently evict" in checks["maxmemory_policy"]["advice"]
    assert checks["persistence"]["status"] == "warn"


def test_missing_permissions_are_named(
    rediq_redis_server_factory: Callable[..., RedisServer],
) -> None:
    server = rediq_redis_server_factory()
    subprocess.run(
        [
            "redis-cli",
            "-p",
            str(server.port),
            "ACL",
            "SETUSER",
            "worker",
            "on",
            ">s3cret",
            "~*",
            "&*",
            "+@all",
            "-publish",
        ],
        check=True,
        capture_output=True,
    )
    status, checks, stderr = doctor(f"redis://worker:s3cret@127.0.0.1:{server.port}/0")
    assert status == 1, stderr
    assert checks["acl"]["status"] == "fail" and "PUBLISH" in checks["acl"]["detail"]


def test_an_unreachable_server_is_one_line_with_the_password_masked() -> None:
    from rediq_redis.testing.redis_server import free_port

    done = subprocess.run(
        [*CLI, "doctor", "--redis-url", f"redis://:pw@127.0.0.1:{free_port()}/0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "redis://:***@127.0.0.1" in done.stderr, done.stderr
