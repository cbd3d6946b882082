"""A producer+worker run as a child process by test_kill_client.py.

``python -m tests.broker.protocol_client URL NAMESPACE TASK_ID``: performs the protocol
steps of one task, printing ``step N`` after each and then waiting for a line on stdin, so
the parent can SIGKILL it between any two commands. ``loop`` mode instead runs batches
without pausing, to be killed at a random instant.
"""

from __future__ import annotations

import asyncio
import sys

from rediq_core.broker import BrokerOptions, Lease, Settlement, TaskError
from rediq_core.testing.broker_contract import make_message
from rediq_redis import RedisBroker

QUEUE = "kill"
LEASE_MS = 200


async def steps(broker: RedisBroker, task_id: str) -> None:
    def pause(n: int) -> None:
        print(f"step {n}", flush=True)
        sys.stdin.readline()

    message = make_message(queue=QUEUE, id=task_id, result_ttl_s=60)
    pause(0)
    await broker.enqueue([message])
    pause(1)
    await broker.fetch(QUEUE, worker_id="child", limit=1, lease_ms=LEASE_MS)
    pause(2)
    await broker.extend_leases("child", {QUEUE: [Lease(task_id, 1)]}, LEASE_MS)
    pause(3)
    await broker.settle(
        "child",
        [Settlement(task_id, QUEUE, error=TaskError("E", "x"), retry_delay_ms=0, delivery=1)],
    )
    pause(4)
    await broker.fetch(QUEUE, worker_id="child", limit=1, lease_ms=LEASE_MS)
    pause(5)
    await broker.settle("child", [Settlement(task_id, QUEUE, result=b"done", delivery=2)])
    pause(6)


async def loop(broker: RedisBroker) -> None:
    print("running", flush=True)
    while True:
        await broker.enqueue([make_message(queue=QUEUE, result_ttl_s=0) for _ in range(20)])
        batch = await broker.fetch(QUEUE, worker_id="child", limit=20, lease_ms=LEASE_MS)
        deliveries = batch.deliveries
        await broker.settle(
            "child",
            [
                Settlement(d.message.id, QUEUE, result=b"r", delivery=d.deliveries)
                for d in deliveries[::2]
            ],
        )
        await broker.release("child", {QUEUE: [d.lease for d in deliveries[1::2]]})


async def main(url: str, namespace: str, task_id: str) -> None:
    broker = RedisBroker(BrokerOptions(url=url, namespace=namespace))
    await broker.connect()
    await (loop(broker) if task_id == "loop" else steps(broker, task_id))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
