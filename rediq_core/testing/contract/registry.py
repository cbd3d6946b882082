"""The registry role: worker heartbeats, the list of live workers, and stop requests
(including one made before the worker listens)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rediq_core.message import now_ms
from rediq_core.records import WorkerRecord
from rediq_core.roles import Registry, Role

from .helpers import (
    WAIT_S,
    RoleContract,
)

__all__ = ["RegistryContract"]


class RegistryContract(RoleContract):
    role = Role.REGISTRY
    requires: ClassVar[frozenset[Role]] = frozenset()

    async def test_stop_workers(self, broker: Registry) -> None:
        for worker_id in ("w-1", "w-2"):
            await broker.heartbeat(
                WorkerRecord(id=worker_id, name="n", queues=(), heartbeat_age_s=0), ttl_s=60
            )
        stream = broker.stop_requests("w-1")
        try:
            first = asyncio.ensure_future(anext(stream))
            for _ in range(60):  # the subscription may start after the first request
                assert await broker.stop_workers(["w-1", "ghost"]) == 1
                done, _ = await asyncio.wait({first}, timeout=0.25)
                if done:
                    break
            assert first.done(), "stop request never arrived"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        # A request made before the worker listens is seen when it subscribes.
        assert await broker.stop_workers(["w-2"]) == 1
        late = broker.stop_requests("w-2")
        try:
            await asyncio.wait_for(anext(late), WAIT_S)
        finally:
            aclose = getattr(late, "aclose", None)
            if aclose is not None:
                await aclose()

    async def test_worker_registry(self, broker: Registry) -> None:
        worker = WorkerRecord(
            id="w-1", name="host:1", queues=("a", "b"), heartbeat_age_s=0, info={"pid": 1}
        )
        before = now_ms()
        await broker.heartbeat(worker, ttl_s=60)
        await broker.heartbeat(
            WorkerRecord(id="w-2", name="host:2", queues=(), heartbeat_age_s=0), ttl_s=1
        )
        found = {w.id: w for w in await broker.workers()}
        assert set(found) == {"w-1", "w-2"}
        assert found["w-1"].queues == ("a", "b") and found["w-1"].name == "host:1"
        assert found["w-1"].info == {"pid": 1}
        since_s = (now_ms() - before) / 1000
        assert 0 <= found["w-1"].heartbeat_age_s <= since_s + 1, since_s  # 1 s: clock steps
        await broker.unregister_worker("w-1")
        assert "w-1" not in {w.id for w in await broker.workers()}
