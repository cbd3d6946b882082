"""The layout constants shared by the Lua scripts and the Python code have one source
(rediq_redis/layout.py): the scripts use the generated names, and both sides agree."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from redis.asyncio import Redis

from rediq_redis import layout
from rediq_redis.keys import QueueKeys
from rediq_redis.scripts import (
    CRON_SCRIPTS,
    QUEUE_SCRIPTS,
    STANDALONE_SCRIPTS,
    prelude_source,
    script_source,
    shaken,
)

SCRIPTS = resources.files("rediq_redis") / "scripts"
LUA_FILES = sorted(p for p in SCRIPTS.iterdir() if p.name.endswith(".lua"))

#: What a script would contain if it spelt a layout value out instead of using its name.
BARE_VALUES = {
    "the pending member format": re.compile(r"%016x"),
    "the member id offset": re.compile(r"string\.sub\(\s*[\w\[\]]+\s*,\s*1[78]\s*\)"),
    "the slot length": re.compile(r"\b60000\b|\b60_000\b"),
    "the minute stamp field": re.compile(r"'t:'|\"t:\""),
    "the group separator": re.compile(r"'\\n'|\"\\n\""),
    "a layout local defined by hand": re.compile(
        r"\blocal\s+(" + "|".join(layout.LUA_CONSTANTS) + r")\s*="
    ),
}


def _code(text: str) -> str:
    """Lua source without its ``--`` comments (none of the scripts has ``--`` in a string)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def test_every_script_is_assembled_by_the_one_function() -> None:
    names = {p.name.removesuffix(".lua") for p in LUA_FILES} - {"_prelude"}
    assert names == {*QUEUE_SCRIPTS, *CRON_SCRIPTS, *STANDALONE_SCRIPTS}
    prelude = prelude_source()
    for name in (*QUEUE_SCRIPTS, *CRON_SCRIPTS):
        body = (SCRIPTS / f"{name}.lua").read_text("utf-8")
        source = script_source(name)
        assert source == shaken(prelude, body) + "\n" + body and "--@" not in source, name
    for name in STANDALONE_SCRIPTS:
        assert "--@" not in script_source(name) and "local Q" not in script_source(name)


@pytest.mark.parametrize("name", [*QUEUE_SCRIPTS, *CRON_SCRIPTS])
def test_a_script_defines_every_prelude_function_it_calls(name: str) -> None:
    """Each script carries only the prelude functions it can call (``shaken``): every
    call of a prelude function in its text (``name(``) comes after that function's
    definition, which is what Lua needs of a ``local function``."""
    prelude_functions = set(re.findall(r"^local function (\w+)\(", prelude_source(), re.M))
    defined: set[str] = set()
    for line in _code(script_source(name)).splitlines():
        opened = re.match(r"local function (\w+)\(", line)
        if opened:
            defined.add(opened.group(1))
        for called in re.findall(r"(?<![\w.:])(\w+)\s*\(", line):
            if called in prelude_functions:
                assert called in defined, f"{name} calls {called}() before defining it"


def test_a_script_leaves_out_the_prelude_functions_it_cannot_call() -> None:
    wait = script_source("wait")
    assert "local function waiting_mark(" in wait and "local function hand_off(" not in wait


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda p: p.name)
def test_no_script_spells_out_a_layout_value(path: object) -> None:
    code = _code(path.read_text("utf-8"))  # type: ignore[attr-defined]
    for what, pattern in BARE_VALUES.items():
        assert not pattern.search(code), f"{what} in {path}: use the name from layout.py"


def test_every_layout_constant_is_used_by_the_scripts() -> None:
    code = "\n".join(_code(p.read_text("utf-8")) for p in LUA_FILES)
    for name in layout.LUA_CONSTANTS:
        assert re.search(rf"\b{name}\b", code), f"{name} is generated but no script uses it"


async def test_lua_sees_the_python_values_and_both_sides_cut_members_alike(
    redis: Redis, rediq_namespace: str
) -> None:
    constants = list(layout.LUA_CONSTANTS)
    probe = (
        prelude_source()
        + "\nreturn { {"
        + ", ".join(constants)
        + "}, member_id(ARGV[1]), string.format(POSITION_FORMAT, tonumber(ARGV[2]), ARGV[3]) }"
    )
    keys = QueueKeys(rediq_namespace, "layout").all
    python_member = layout.pending_member(0x1F, "id:with:colons")
    seen, cut, lua_member = await redis.eval(  # type: ignore[misc]
        probe, len(keys), *keys, python_member, 3_000_000_000, "t-1"
    )

    def plain(value: object) -> object:
        if isinstance(value, list):
            return tuple(plain(v) for v in value)
        return value.decode() if isinstance(value, bytes) else value

    assert dict(zip(constants, map(plain, seen), strict=True)) == dict(layout.LUA_CONSTANTS)
    assert plain(cut) == "id:with:colons" == layout.member_id(python_member)
    assert plain(lua_member) == layout.pending_member(3_000_000_000, "t-1")
    assert layout.member_id(str(plain(lua_member))) == "t-1"


async def test_lua_and_python_read_a_record_alike(redis: Redis, rediq_namespace: str) -> None:
    """A record packed by the scripts is parsed by ``layout.parse_record``, and one
    built from RECORD_FIELDS in Python is parsed by the prelude: same fields, and the
    envelope length cuts envelope and payload apart even when both hold ``|``."""
    envelope, payload = b'{"name": "a|b"}', b"\x00|pay|load\xff"
    fields = {name: str(i) for i, name in enumerate(layout.RECORD_FIELDS)}
    fields |= {"state": "active", "worker": "", "envelope": str(len(envelope))}
    python_raw = (
        "|".join(fields[name] for name in layout.RECORD_FIELDS).encode() + b"|" + envelope + payload
    )
    names = "{" + ", ".join(f"'{n}'" for n in layout.RECORD_FIELDS) + "}"
    probe = (
        prelude_source()
        + f"\nlocal names = {names}"
        + "\nlocal r = parse(ARGV[1])"
        + "\nlocal seen = {}"
        + "\nfor i, name in ipairs(names) do seen[i] = r[name] end"
        + "\nlocal built = { body = ARGV[2] .. ARGV[3] }"
        + "\nfor i, name in ipairs(names) do built[name] = ARGV[3 + i] end"
        + "\nreturn { seen, string.sub(r.raw, r.at), envelope_text(r), pack(built) }"
    )
    keys = QueueKeys(rediq_namespace, "layout").all
    values = [fields[name] for name in layout.RECORD_FIELDS]
    seen, body, lua_envelope, lua_raw = await redis.eval(  # type: ignore[misc]
        probe, len(keys), *keys, python_raw, envelope, payload, *values
    )
    assert [v.decode() for v in seen] == values
    assert (body, lua_envelope) == (envelope + payload, envelope)
    assert lua_raw == python_raw
    record = layout.parse_record(lua_raw)
    assert record is not None and dict(record.fields) == fields
    assert (record.envelope, record.payload) == (envelope, payload)
    assert layout.parse_record(b"pending|0|1") is None and layout.parse_record(None) is None
