"""Publish tutorial tasks and print their results: ``python producer.py [SECONDS]``.

Run it next to a worker started with ``rediq mytasks:app --queue-name a ...``.
"""

from __future__ import annotations

import asyncio
import sys

from mytasks import app, simple_task

from rediq import TaskFailedError


async def main(sec: float) -> int:
    try:
        handles = [await simple_task(sec).enqueue() for _ in range(3)]
        # One call that cannot finish within its timeout: it is retried 3 times, then
        # after_task_failure fires on the worker.
        doomed = await simple_task(sec * 10).options(timeout=max(1, int(sec * 1000))).enqueue()
        for handle in handles:
            print(f"task {handle.hex()}: {await handle.result(timeout=60)!r}")
        try:
            await doomed.result(timeout=60)
        except TaskFailedError as exc:
            print(f"task {doomed.hex()}: failed as expected ({exc.message})")
        return 0
    finally:
        await app.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.2)))
