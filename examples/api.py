"""A FastAPI producer (``pip install fastapi uvicorn``; ``uvicorn api:api``).

GET / enqueues ``simple_task`` and returns its id; GET /result/{task_id} awaits it.
"""

from __future__ import annotations

from typing import Any

from mytasks import app, simple_task

try:
    from fastapi import FastAPI
except ImportError as exc:  # fastapi is optional: only this example needs it
    raise SystemExit("examples/api.py needs FastAPI: pip install fastapi uvicorn") from exc

api = FastAPI()


@api.get("/")
async def publish_simple_task() -> dict[str, str]:
    handle = await simple_task(123).enqueue()  # enqueue simple_task, get a handle
    return dict(task_id=handle.hex())


@api.get("/result/{task_id}")
async def task_result(task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    record = await app.get_broker().wait_finished(task_id, "a", timeout)
    if record is None:
        return dict(task_id=task_id, state="unfinished")
    return dict(
        task_id=task_id,
        state=record.state.value,
        result=app.decode_result(record) if record.state.value == "succeeded" else None,
    )
