"""Control commands that change things: cancel, delete, purge, dead-letters, pause,
resume, forget and stop-worker. Destructive ones ask on a terminal and need ``--yes``
elsewhere; each exits 1 when it found nothing to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import rich_click as click
from rich.table import Table

from ..broker import CancelOutcome, TaskState
from ..control import PURGEABLE_STATES
from ..errors import AmbiguousWorkerError
from ..inspection import QueueOverview
from .inspect_cmds import known_queue, parse_state
from .render import console, echo_json, task_json, tasks_table
from .target import (
    CommandError,
    Target,
    UsageFailure,
    confirm,
    control_command,
    report_paused,
    run,
)

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = [
    "cancel",
    "dead_letters",
    "delete",
    "forget",
    "pause",
    "purge",
    "resume",
    "stop_worker",
]

yes_option = click.option("-y", "--yes", is_flag=True, help="Do it without asking.")


def _ids_or_group(ids: Sequence[str], group: str | None) -> None:
    if bool(ids) == bool(group):
        raise UsageFailure("name task ids or --group GROUP (one of the two)")


def _report(
    target: Target,
    document: dict[str, Any],
    rows: list[tuple[str, str]],
    title: str,
    nothing: str | None,
) -> None:
    """Print the document (JSON) or a two-column table; exit 1 with ``nothing`` if set
    (then a table is not printed: the one-line error says it all)."""
    if target.as_json:
        echo_json(document)
    elif rows and not nothing:
        table = Table(title=title)
        table.add_column("id")
        table.add_column("outcome")
        for row in rows:
            table.add_row(*row)
        console().print(table)
    if nothing:
        raise CommandError(nothing)


@click.command()
@click.argument("task_ids", nargs=-1, metavar="[ID]...")
@click.option("--group", default=None, help="Cancel every unfinished task of this group.")
@click.option("--queue", default=None, help="Only in this queue.")
@yes_option
@control_command
def cancel(
    target: Target, task_ids: tuple[str, ...], group: str | None, queue: str | None, yes: bool
) -> None:
    """Cancel tasks: waiting ones end at once, running ones are cancelled on their worker."""
    _ids_or_group(task_ids, group)
    confirm(
        f"cancel every task of group {group!r}?" if group else f"cancel {len(task_ids)} task(s)?",
        yes,
    )

    async def action(app: Rediq) -> dict[str, CancelOutcome]:
        if group:
            return await app.control.cancel_group(group, queue)
        return {i: await app.control.cancel(i, queue) for i in task_ids}

    outcomes = run(target, action)
    done = [
        i for i, o in outcomes.items() if o in (CancelOutcome.CANCELLED, CancelOutcome.REQUESTED)
    ]
    counts = {o.value: sum(1 for x in outcomes.values() if x is o) for o in CancelOutcome}
    document = {"outcomes": {i: o.value for i, o in outcomes.items()}, "counts": counts}
    missing = ", ".join(i for i, o in outcomes.items() if o is CancelOutcome.NOT_FOUND)
    nothing = (
        None
        if done
        else (
            f"nothing cancelled: group {group!r} has no unfinished task"
            if group
            else f"nothing cancelled: {missing or 'every task had already ended'}"
            + (" not found" if missing else "")
        )
    )
    _report(target, document, [(i, o.value) for i, o in outcomes.items()], "cancel", nothing)


@click.command()
@click.argument("task_ids", nargs=-1, metavar="[ID]...")
@click.option("--group", default=None, help="Delete every task of this group not running.")
@click.option("--queue", default=None, help="Only in this queue.")
@yes_option
@control_command
def delete(
    target: Target, task_ids: tuple[str, ...], group: str | None, queue: str | None, yes: bool
) -> None:
    """Forget tasks that are not running (waiting, dead or finished): record and result."""
    _ids_or_group(task_ids, group)
    confirm(
        f"delete every task of group {group!r}?" if group else f"delete {len(task_ids)} task(s)?",
        yes,
    )

    async def action(app: Rediq) -> dict[str, bool] | int:
        if group:
            return await app.control.delete_group(group, queue)
        return {i: await app.control.delete(i, queue) for i in task_ids}

    result = run(target, action)
    if isinstance(result, int):
        _report(
            target,
            {"group": group, "deleted": result},
            [],
            "delete",
            None if result else f"nothing deleted: group {group!r} has no task to delete",
        )
        if result and not target.as_json:
            click.echo(f"deleted {result} task(s) of group {group!r}")
        return
    deleted = [i for i, ok in result.items() if ok]
    kept = [i for i, ok in result.items() if not ok]
    _report(
        target,
        {"deleted": deleted, "not_deleted": kept},
        [(i, "deleted" if ok else "not found or running") for i, ok in result.items()],
        "delete",
        None
        if deleted
        else f"nothing deleted: {', '.join(kept)} not found or running (cancel it first)",
    )


def _purge_states(names: Sequence[str]) -> tuple[TaskState, ...]:
    if not names or "all" in [n.lower() for n in names]:
        return PURGEABLE_STATES
    return tuple(
        dict.fromkeys(
            parse_state(n, ("pending", "waiting", "limited", "scheduled", "dead", "failed", "all"))
            for n in names
        )
    )


@click.command()
@click.argument("queue")
@click.option(
    "--state",
    "state_names",
    multiple=True,
    help="pending, waiting, limited, scheduled, dead or all (repeatable; default all).",
)
@yes_option
@control_command
def purge(target: Target, queue: str, state_names: tuple[str, ...], yes: bool) -> None:
    """Remove QUEUE's waiting tasks and dead letters (running tasks are never purged)."""
    states = _purge_states(state_names)
    names = [("dead" if s is TaskState.FAILED else s.value) for s in states]

    async def check(app: Rediq) -> None:
        await known_queue(app, queue)

    run(target, check)
    confirm(f"purge the {', '.join(names)} tasks of queue {queue!r}?", yes)
    removed = run(target, lambda app: app.control.purge(queue, states))
    if removed and not target.as_json:
        click.echo(f"removed {removed} task(s) from {queue!r} ({', '.join(names)})")
    _report(
        target,
        {"queue": queue, "states": names, "removed": removed},
        [],
        "purge",
        None if removed else f"nothing to purge in queue {queue!r}",
    )


@click.command("dead-letters")
@click.argument("queue")
@click.argument("action", type=click.Choice(["list", "requeue", "delete"]), default="list")
@click.argument("task_ids", nargs=-1, metavar="[ID]...")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--cursor", default=None, help="The next_cursor of a previous page.")
@yes_option
@control_command
def dead_letters(
    target: Target,
    queue: str,
    action: str,
    task_ids: tuple[str, ...],
    limit: int,
    cursor: str | None,
    yes: bool,
) -> None:
    """List QUEUE's dead letters, or requeue / delete them (all, or the ids given)."""
    run(target, lambda app: known_queue(app, queue))
    ids = list(task_ids) or None
    if action == "list":
        app, page = run(target, lambda a: _page(a, queue, limit, cursor))
        if target.as_json:
            echo_json(
                {
                    "queue": queue,
                    "tasks": [task_json(r, app) for r in page.tasks],
                    "next_cursor": page.next_cursor,
                }
            )
        else:
            console().print(tasks_table(page.tasks, f"{queue}: dead letters"))
            if page.next_cursor:
                click.echo(f"more: --cursor {page.next_cursor}")
        return
    if action == "delete":
        confirm(f"delete {len(ids) if ids else 'every'} dead letter(s) of {queue!r}?", yes)
    if action == "requeue":
        count = run(target, lambda a: a.control.requeue_dead(queue, ids))
    else:
        count = run(target, lambda a: a.control.delete_dead(queue, ids))
    if count and not target.as_json:
        click.echo(f"{action}d {count} dead letter(s) of {queue!r}")
    _report(
        target,
        {"queue": queue, "action": action, "count": count},
        [],
        action,
        None if count else f"nothing to {action}: no such dead letter in {queue!r}",
    )


async def _page(app: Rediq, queue: str, limit: int, cursor: str | None) -> Any:
    try:
        return app, await app.control.dead_letters(queue, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None


def _set_paused(target: Target, queue: str, pausing: bool, force: bool) -> None:
    async def action(app: Rediq) -> bool:
        if not force:
            hint = "; pass --force to pause a queue before its first task" if pausing else ""
            await known_queue(app, queue, hint)
        return await (app.control.pause(queue) if pausing else app.control.resume(queue))

    # --force is for a deployment's first steps, so an empty namespace is no error there
    report_paused(target, "queue", queue, pausing, run(target, action, check_namespace=not force))


@click.command()
@click.argument("queue")
@click.option("--force", is_flag=True, help="Pause it even if no task was ever sent to it.")
@control_command
def pause(target: Target, queue: str, force: bool) -> None:
    """Pause QUEUE: workers stop leasing its tasks within one fetch (running tasks finish;
    the pause outlives worker restarts). A queue never seen needs --force."""
    _set_paused(target, queue, True, force)


@click.command()
@click.argument("queue")
@control_command
def resume(target: Target, queue: str) -> None:
    """Resume a paused QUEUE: workers lease its tasks again at once."""
    _set_paused(target, queue, False, False)


def _held(o: QueueOverview) -> str:
    counts = {"pending": o.pending, "scheduled": o.scheduled, "active": o.active, "dead": o.dead}
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n)


@click.command()
@click.argument("queue")
@yes_option
@control_command
def forget(target: Target, queue: str, yes: bool) -> None:
    """Forget an empty QUEUE (a typo, a queue no longer used): it leaves `rediq queues`,
    its pause flag and counters go. Refused while it holds waiting, running or dead tasks."""
    run(target, lambda app: known_queue(app, queue))
    confirm(f"forget queue {queue!r} and its counters?", yes)

    async def action(app: Rediq) -> QueueOverview | None:
        return None if await app.control.forget(queue) else await app.control.queue(queue)

    held = run(target, action)
    if target.as_json:
        echo_json({"queue": queue, "forgotten": held is None})
    elif held is None:
        click.echo(f"queue {queue!r} forgotten")
    if held is not None:
        raise CommandError(
            f"queue {queue!r} is not empty ({_held(held) or 'tasks arrived meanwhile'}):"
            " purge it or let its tasks end first"
        )


@click.command("stop-worker")
@click.argument("name", required=False)
@click.option(
    "--all", "every", is_flag=True, help="Every registered worker (with NAME: of that name)."
)
@yes_option
@control_command
def stop_worker(target: Target, name: str | None, every: bool, yes: bool) -> None:
    """Ask a worker (by id, or by a name no other worker has) to shut down gracefully: it
    stops fetching, finishes running and prefetched tasks, and exits. --all: every worker,
    or with NAME every worker of that name."""
    if not name and not every:
        raise UsageFailure("name a worker (NAME or id) or pass --all (one of the two)")
    question = f"stop worker {name!r}?"
    if every:
        question = f"stop every worker named {name!r}?" if name else "stop every worker?"
    confirm(question, yes)

    async def action(app: Rediq) -> list[str]:
        if not name:
            return await app.control.stop_all_workers()
        try:
            return await app.control.stop_worker(name, every=every)
        except AmbiguousWorkerError as exc:
            raise CommandError(
                f"{len(exc.ids)} workers are named {name!r}: {', '.join(exc.ids)};"
                " pass a worker id, or --all to stop every one of them"
            ) from None

    asked = run(target, action)
    if not target.as_json:
        for worker_id in asked:
            click.echo(f"asked {worker_id} to stop")
    _report(
        target,
        {"asked": asked},
        [],
        "stop-worker",
        None if asked else f"no registered worker {repr(name) if name else 'at all'}",
    )
