"""A FastAPI producer (``pip install fastapi uvicorn``; ``uvicorn api:api``).

GET / enqueues ``simple_task`` and returns its id; GET /result/{task_id} awaits it.
"""

from __future__ import annotations

from typing import Any

from mytasks import app, simple_task

from rediq import TaskNotFoundError

try:
    from fastapi import FastAPI, HTTPException
except ImportError as exc:  # fastapi is optional: only this example needs it
    raise SystemExit("examples/api.py needs FastAPI: pip install fastapi uvicorn") from exc

api = FastAPI()


@api.get("/")
async def publish_simple_task() -> dict[str, str]:
    handle = await simple_task(123).enqueue()  # enqueue simple_task, get a handle
    return dict(task_id=handle.hex())


@api.get("/result/{task_id}")
async def task_result(task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The task's result; 504 while it runs longer than ``timeout``, 404 for an unknown id."""
    try:
        result = await app.result(task_id, timeout=timeout)  # finds the task's queue
    except TaskNotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except TimeoutError as exc:
        raise HTTPException(status_code=504, detail=str(exc)) from exc
    return dict(task_id=task_id, result=result)
