"""The cron scripts (``scripts/cron_*.lua``), loaded with the queue prelude.

``cron_fire`` embeds the body of ``enqueue.lua`` as a local function, so a tick's run is
written by the very code that writes every other task (whatever that code becomes).
"""

from __future__ import annotations

from redis.asyncio import Redis

from rediq_core import defaults

from .scripts import LuaScript, _key_table, _read

__all__ = ["CRON_SCRIPTS", "CronScripts", "cron_script_source"]

CRON_SCRIPTS = ("cron_fire", "cron_register", "cron_pause", "cron_forget")


def cron_script_source(name: str, replay_ms: int = defaults.REPLAY_WINDOW_MS) -> str:
    """The full text sent to Redis for cron script ``name`` (``replay_ms``: how long a
    call's answer is remembered for a re-send, as for every other script)."""
    prelude = _read("_prelude").replace("--@QUEUE_KEYS@--", _key_table())
    prelude = prelude.replace("--@REPLAY_MS@--", str(int(replay_ms)))
    body = _read(name)
    if "--@ENQUEUE_TASK@--" in body:
        enqueue = f"local function enqueue_task(ARGV)\n{_read('enqueue')}\nend\n"
        body = body.replace("--@ENQUEUE_TASK@--", enqueue)
    return prelude + "\n" + body


class CronScript(LuaScript):
    """A cron script: a :class:`LuaScript` whose source is composed here."""

    def __init__(self, name: str, client: Redis, replay_ms: int) -> None:
        self.name = name
        self._script = client.register_script(cron_script_source(name, replay_ms))


class CronScripts:
    """Every cron script, registered on one client (``replay_ms``: the broker's
    ``replay_window_ms``)."""

    def __init__(self, client: Redis, replay_ms: int) -> None:
        self.fire = CronScript("cron_fire", client, replay_ms)
        self.register = CronScript("cron_register", client, replay_ms)
        self.pause = CronScript("cron_pause", client, replay_ms)
        self.forget = CronScript("cron_forget", client, replay_ms)
