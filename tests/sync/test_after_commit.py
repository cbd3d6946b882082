"""The enqueue-after-commit recipes of docs/integrations.md, with a worker on a real
redis-server: a task is sent only once its transaction commits, so it always finds its
row, and a rolled-back transaction sends nothing.

SQLAlchemy (a sync ``Session``, and an ``AsyncSession`` over aiosqlite) and Django
(``transaction.on_commit``) on sqlite files.
The database code runs in a thread, as in a view of a threaded server: it has no event
loop, and Django refuses database access from a thread that runs one."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, create_engine, event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column

from rediq import Rediq, TaskCall, TaskDefinition, TaskHandle
from rediq.testing import run_worker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def app(rediq_redis_url: str, rediq_namespace: str) -> AsyncIterator[Rediq]:
    app = Rediq(broker_url=rediq_redis_url, namespace=rediq_namespace)
    try:
        yield app
    finally:
        await app.close()


def read_note_task(app: Rediq) -> TaskDefinition[[str, int], str | None]:
    @app.task
    async def read_note(database: str, note_id: int) -> str | None:
        """What a worker finds in the database when the task runs."""
        with sqlite3.connect(database) as db:
            row = db.execute("SELECT text FROM notes WHERE id = ?", (note_id,)).fetchone()
        return row[0] if row else None

    return read_note


async def queued(app: Rediq) -> int:
    """Tasks of the default queue that were ever stored, through the control API."""
    overview = await app.control.queue("default")
    return overview.pending + overview.scheduled + overview.active + overview.totals["succeeded"]


# --- SQLAlchemy: the recipe of docs/integrations.md (the test keeps the handles) -------

PENDING = "rediq_pending"


def enqueue_after_commit(session: Session, call: TaskCall[Any]) -> None:
    """Send ``call`` when the session's transaction commits; never if it rolls back."""
    session.info.setdefault(PENDING, []).append(call)


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint committed: wait for the transaction
    for call in session.info.pop(PENDING, []):
        session.info.setdefault("rediq_sent", []).append(call.enqueue_sync())


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed without a commit
        session.info.pop(PENDING, None)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


async def test_sqlalchemy_sends_after_commit_and_never_after_rollback(
    app: Rediq, tmp_path: Path
) -> None:
    database = str(tmp_path / "notes.sqlite3")
    engine = create_engine(f"sqlite:///{database}")
    Base.metadata.create_all(engine)
    read_note = read_note_task(app)

    def rolled_back() -> None:
        with (
            pytest.raises(RuntimeError, match="the view failed"),
            Session(engine) as session,
            session.begin(),
        ):
            note = Note(text="never")
            session.add(note)
            session.flush()
            enqueue_after_commit(session, read_note(database, note.id))
            raise RuntimeError("the view failed")
        with Session(engine) as session:  # closed without a commit
            note = Note(text="abandoned")
            session.add(note)
            session.flush()
            enqueue_after_commit(session, read_note(database, note.id))
        with Session(engine) as session:  # a savepoint commits, its transaction does not
            savepoint = session.begin_nested()
            session.add(Note(text="savepoint"))
            enqueue_after_commit(session, read_note(database, 99))
            savepoint.commit()
            session.rollback()

    def committed() -> list[TaskHandle[str | None]]:
        with Session(engine) as session, session.begin():
            notes = [Note(text=f"note {n}") for n in range(3)]
            session.add_all(notes)
            session.flush()
            for note in notes:
                enqueue_after_commit(session, read_note(database, note.id))
            assert PENDING in session.info and "rediq_sent" not in session.info
        sent: list[TaskHandle[str | None]] = session.info["rediq_sent"]
        return sent

    await asyncio.to_thread(rolled_back)
    assert await queued(app) == 0, "a rolled-back transaction sent a task"
    async with run_worker(app, queues=("default",)):
        handles = await asyncio.to_thread(committed)
        assert [await h.result(timeout=10) for h in handles] == ["note 0", "note 1", "note 2"]
    assert await queued(app) == 3
    engine.dispose()


# --- SQLAlchemy's AsyncSession: enqueue after the block that commits ------------------


async def create_note(
    sessions: async_sessionmaker[AsyncSession],
    read_note: TaskDefinition[[str, int], str | None],
    database: str,
    text: str,
    fail: bool = False,
) -> TaskHandle[str | None]:
    async with sessions() as session:
        async with session.begin():
            note = Note(text=text)
            session.add(note)
            await session.flush()  # assigns note.id
            call = read_note(database, note.id)
            if fail:
                raise RuntimeError("the handler failed")
        # committed: an exception in the block (or a failed commit) skips this line
        return await call.enqueue()


async def test_async_sqlalchemy_sends_after_the_block_commits(app: Rediq, tmp_path: Path) -> None:
    database = str(tmp_path / "notes.sqlite3")
    schema = create_engine(f"sqlite:///{database}")
    Base.metadata.create_all(schema)
    schema.dispose()
    engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    sessions = async_sessionmaker(engine)
    read_note = read_note_task(app)
    with pytest.raises(RuntimeError, match="the handler failed"):
        await create_note(sessions, read_note, database, "never", fail=True)
    assert await queued(app) == 0, "a rolled-back transaction sent a task"
    async with run_worker(app, queues=("default",)):
        handles = [await create_note(sessions, read_note, database, f"note {n}") for n in range(3)]
        assert [await h.result(timeout=10) for h in handles] == ["note 0", "note 1", "note 2"]
    assert await queued(app) == 3
    await engine.dispose()


# --- Django: transaction.on_commit ----------------------------------------------------


@pytest.fixture(scope="module")
def django_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A minimal Django configuration (no project, no app): one sqlite database."""
    import django
    from django.conf import settings

    database = str(tmp_path_factory.mktemp("django") / "db.sqlite3")
    if settings.configured:
        pytest.fail("Django is configured already; this module configures it itself")
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()
    yield database


async def test_django_on_commit_sends_after_commit_and_never_after_rollback(
    app: Rediq, django_database: str
) -> None:
    from django.db import connection, transaction

    read_note = read_note_task(app)
    handles: list[TaskHandle[str | None]] = []

    def create_note(text: str, fail: bool = False) -> None:
        """A view: the task is sent when (and only if) the atomic block commits."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO notes (text) VALUES (%s)", [text])
            note_id = cursor.lastrowid
            transaction.on_commit(
                lambda: handles.append(read_note(django_database, note_id).enqueue_sync())
            )
            if fail:
                raise RuntimeError("the view failed")

    def rolled_back() -> None:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        with pytest.raises(RuntimeError, match="the view failed"):
            create_note("never", fail=True)
        with (  # an inner block rolls back, the outer one commits
            transaction.atomic(),
            pytest.raises(RuntimeError, match="inner block failed"),
            transaction.atomic(),
        ):
            create_note("inner", fail=False)
            raise RuntimeError("inner block failed")
        connection.close()

    def committed() -> None:
        for n in range(3):
            create_note(f"note {n}")
        connection.close()

    await asyncio.to_thread(rolled_back)
    assert handles == [] and await queued(app) == 0, "a rolled-back transaction sent a task"
    async with run_worker(app, queues=("default",)):
        await asyncio.to_thread(committed)
        assert [await h.result(timeout=10) for h in handles] == ["note 0", "note 1", "note 2"]
    assert await queued(app) == 3
