"""Message signing and limits at enqueue: keys, rotation, forgeries, the pickle rule."""

from __future__ import annotations

import dataclasses

import pytest

from rediq import ConfigurationError, MessageTooLargeError, Rediq, TaskFailedError
from rediq_core.signing import InvalidSignatureError, MessageSigner
from rediq_core.testing.broker_contract import make_message
from rediq_core.worker import Worker, WorkerConfig

from ..worker.conftest import Harness

OLD, NEW, OTHER = "old-key-" + "o" * 24, "new-key-" + "n" * 24, "other-" + "x" * 26


def test_sign_verify_and_rotate() -> None:
    message = make_message()
    signed = MessageSigner(OLD).sign(message)
    MessageSigner(OLD).verify(signed)
    MessageSigner(NEW, verify_keys=[OLD]).verify(signed)  # rotation: the old key still verifies
    with pytest.raises(InvalidSignatureError, match="unknown key"):
        MessageSigner(NEW).verify(signed)  # once the old key is retired
    with pytest.raises(InvalidSignatureError, match="unsigned"):
        MessageSigner(NEW).verify(message)


@pytest.mark.parametrize(
    "change",
    [
        {"payload": b"[[1],{}]"},
        {"name": "other.task"},
        {"priority": -5},
        {"headers": {"x": "y"}},
        {"id": "another-id"},
        {"max_retries": 99},
    ],
)
def test_any_change_breaks_the_signature(change: dict[str, object]) -> None:
    signed = MessageSigner(OLD).sign(make_message())
    with pytest.raises(InvalidSignatureError, match="altered or forged"):
        MessageSigner(OLD).verify(dataclasses.replace(signed, **change))  # type: ignore[arg-type]


def test_a_short_key_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes.*secrets.token_hex"):
        Rediq(signing_key="short")


async def test_a_message_over_the_size_limit_fails_at_enqueue() -> None:
    app = Rediq(max_message_bytes=1000)

    @app.task
    async def big(blob: str) -> None: ...

    with pytest.raises(MessageTooLargeError, match="over this app's max_message_bytes=1,000"):
        await big("x" * 2000).enqueue()  # refused before any connection is made


async def test_a_worker_refuses_unsigned_pickle_unless_told_otherwise(
    rediq_redis_url: str, rediq_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    unsafe = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace, serializer_name="pickle")
    with pytest.raises(ConfigurationError, match="runs code when decoding.*signing_key"):
        await Worker(unsafe, WorkerConfig(handle_signals=False)).run()
    opted_out = Rediq(
        redis_url=rediq_redis_url,
        namespace=rediq_namespace,
        serializer_name="pickle",
        allow_unsigned=True,
    )
    worker = Worker(opted_out, WorkerConfig(handle_signals=False, burst=True))
    assert await worker.run() == 0
    assert "accepting unsigned pickle messages" in caplog.text
    signed = Rediq(
        redis_url=rediq_redis_url,
        namespace=rediq_namespace,
        serializer_name="pickle",
        signing_key=NEW,
    )
    assert signed.unsafe_serializers() == []


async def test_a_signed_app_runs_signed_tasks_and_dead_letters_the_rest(harness: Harness) -> None:
    m = harness.write_app(f"""
app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
            namespace=os.environ["REDIQ_TEST_NAMESPACE"], serializer_name="pickle",
            signing_key={NEW!r}, verify_keys=[{OLD!r}])
old_app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
                namespace=os.environ["REDIQ_TEST_NAMESPACE"], serializer_name="pickle",
                signing_key={OLD!r})
rogue = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
              namespace=os.environ["REDIQ_TEST_NAMESPACE"], serializer_name="pickle",
              signing_key={OTHER!r})

@app.task
async def add(a, b):
    return a + b

old_add = old_app.task(task_name="add")(add.fn)
rogue_add = rogue.task(task_name="add")(add.fn)
""")
    harness.start()
    assert await (await m.add(1, 2).enqueue()).result(timeout=10) == 3
    assert await (await m.old_add(2, 2).enqueue()).result(timeout=10) == 4  # rotated key
    forged = await m.rogue_add(3, 3).enqueue()
    with pytest.raises(TaskFailedError, match="rejected unread: signed with an unknown key"):
        await _result(m.app, forged.id)
    for app in (m.old_app, m.rogue):
        await app.close()


async def _result(app: Rediq, task_id: str) -> object:
    handle = await app.handle(task_id)
    return await handle.result(timeout=10)
