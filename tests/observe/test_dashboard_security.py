"""Dashboard security, against ``rediq dashboard`` subprocesses and a real Redis:
mutations are POST-only and need the CSRF token, read-only mode refuses every mutation,
task data is escaped, basic auth refuses a wrong password, and it mounts under a path."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import httpx
import pytest

from rediq import TaskState

from .conftest import CLI, Harness, free_port, start_dashboard, wait_http

BODY = """
@app.task(task_name="show", task_queue="inbox")
async def show(text, **extra):
    return text
"""

ACTIONS = [
    "/queues/inbox/pause",
    "/queues/inbox/resume",
    "/queues/inbox/purge",
    "/queues/inbox/forget",
    "/queues/inbox/dead/requeue",
    "/queues/inbox/dead/delete",
    "/tasks/{id}/cancel",
    "/tasks/{id}/delete",
    "/tasks/{id}/requeue",
    "/queues/inbox/cancel",
    "/workers/some-worker/stop",
    "/schedules/pause",
    "/schedules/resume",
    "/schedules/trigger",
]
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


async def token_of(client: httpx.AsyncClient, page: str) -> str:
    shown = await client.get(page)
    found = re.search(r'name="csrf_token" value="([^"]+)"', shown.text)
    assert found, f"no CSRF token in {page} ({shown.status_code}): {shown.text[-2000:]}"
    return found.group(1)


async def enqueue_one(harness: Harness) -> str:
    tasks = harness.write_app(BODY)
    handle = await tasks.show(HOSTILE, note=HOSTILE).enqueue()
    return str(handle.hex())


async def test_mutations_refuse_get_and_a_missing_or_wrong_csrf_token(harness: Harness) -> None:
    task_id = await enqueue_one(harness)
    base = start_dashboard(harness)
    control = harness.modules[0].app.control
    async with httpx.AsyncClient(base_url=base) as client:
        token = await token_of(client, "/queues/inbox")
        for action in ACTIONS:
            path = action.format(id=task_id)
            assert (await client.get(path)).status_code == 405, path
            assert (await client.post(path, data={})).status_code == 403, path
            assert (await client.post(path, data={"csrf_token": "x" * 43})).status_code == 403, path
        cross = await client.post(
            "/queues/inbox/pause",
            data={"csrf_token": token},
            headers={"Origin": "http://evil.example"},
        )
        assert cross.status_code == 403
        assert not (await control.queue("inbox")).paused
        assert (await control.task(task_id)).state is TaskState.PENDING  # nothing changed
        done = await client.post("/queues/inbox/pause", data={"csrf_token": token})
        assert done.status_code == 303 and "/queues/inbox?notice=" in done.headers["location"]
        assert (await control.queue("inbox")).paused


async def test_read_only_mode_refuses_every_mutation(harness: Harness) -> None:
    task_id = await enqueue_one(harness)
    base = start_dashboard(harness, "--read-only")
    control = harness.modules[0].app.control
    async with httpx.AsyncClient(base_url=base) as client:
        pages = ("/", "/queues/inbox", "/queues/inbox/dead", f"/tasks/{task_id}", "/workers")
        for page in (*pages, "/schedules", "/search?q=show"):
            shown = await client.get(page)
            assert shown.status_code == 200 and "read-only" in shown.text, page
            assert 'method="post"' not in shown.text, page
        token = client.cookies["rediq_dashboard_csrf"]
        for action in ACTIONS:
            refused = await client.post(action.format(id=task_id), data={"csrf_token": token})
            assert refused.status_code == 403, action
            assert "read-only" in refused.text
    assert not (await control.queue("inbox")).paused
    assert (await control.task(task_id)).state is TaskState.PENDING


async def test_task_arguments_holding_html_are_shown_escaped(harness: Harness) -> None:
    task_id = await enqueue_one(harness)
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        for page in (f"/tasks/{task_id}", "/queues/inbox"):
            text = (await client.get(page)).text
            assert "<script>alert" not in text and "<img src=x" not in text, page
        text = (await client.get(f"/tasks/{task_id}")).text
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in text.replace(
            "\\&#34;", "&#34;"
        )
        assert "onerror=alert(1)&gt;" in text


async def test_pages_forbid_framing_and_foreign_scripts(harness: Harness) -> None:
    await enqueue_one(harness)
    base = start_dashboard(harness)
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # no inline script: the policy would block it


def test_the_command_needs_an_app_or_a_url(harness: Harness) -> None:
    env = {k: v for k, v in harness.env.items() if k != "REDIQ_REDIS_URL"}
    done = subprocess.run(
        [*CLI, "dashboard"], cwd=harness.dir, env=env, capture_output=True, text=True, timeout=60
    )
    said = " ".join((done.stdout + done.stderr).replace("│", " ").split())
    assert done.returncode == 2, said
    assert "name the app" in said and "--redis-url" in said


async def test_basic_auth_refuses_a_wrong_password(harness: Harness) -> None:
    await enqueue_one(harness)
    base = start_dashboard(harness, env={"REDIQ_DASHBOARD_AUTH": "admin:s3cret"})
    async with httpx.AsyncClient(base_url=base) as client:
        anonymous = await client.get("/")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Basic realm="rediq"'
        assert (await client.get("/", auth=("admin", "wrong"))).status_code == 401
        assert (await client.get("/", auth=("other", "s3cret"))).status_code == 401
        assert (
            await client.get("/static/dashboard.js", auth=("admin", "wrong"))
        ).status_code == 401
        assert (await client.get("/", auth=("admin", "s3cret"))).status_code == 200


MOUNTING = """
import os
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from rediq import Rediq
from rediq_dashboard import create_dashboard

app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"], namespace=os.environ["REDIQ_TEST_NAMESPACE"])
api = Starlette(routes=[
    Route("/", lambda request: PlainTextResponse("the user's own app")),
    Mount("/ops/rediq", create_dashboard(app, title="ops")),
])
"""


async def test_the_dashboard_mounts_inside_another_starlette_app(harness: Harness) -> None:
    task_id = await enqueue_one(harness)
    (harness.dir / "userapp.py").write_text(MOUNTING)
    port = free_port()
    process = await asyncio.to_thread(
        subprocess.Popen,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "userapp:api",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=harness.dir,
        env=harness.env,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/")).text == "the user's own app"
            page = await client.get("/ops/rediq/")
            assert page.status_code == 200 and 'href="/ops/rediq/queues/inbox"' in page.text
            assert 'href="/ops/rediq/static/dashboard.css"' in page.text
            assert client.cookies.jar and all(c.path == "/ops/rediq" for c in client.cookies.jar)
            token = await token_of(client, f"/ops/rediq/tasks/{task_id}")
            done = await client.post(
                f"/ops/rediq/tasks/{task_id}/cancel", data={"csrf_token": token}
            )
            assert done.status_code == 303
            assert done.headers["location"].startswith(f"/ops/rediq/tasks/{task_id}?notice=")
    finally:
        process.terminate()
        process.wait(10)
    record = await harness.modules[0].app.control.task(task_id)
    assert record is not None and record.state is TaskState.CANCELLED


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
