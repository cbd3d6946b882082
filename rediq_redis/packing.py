"""Command packing in C: the same bytes as redis-py's asyncio packer, about 10x cheaper.

redis-py's asyncio connections pack every command in Python, argument by argument. A
queue script call carries 30-odd arguments (the queue's key names, docs/broker.md), so
packing cost more client CPU than anything else on the enqueue path (about 50 us of a
call here). When hiredis is installed (the ``hiredis`` extra), :func:`fast_packing`
gives a connection class that packs with ``hiredis.pack_command`` instead, falling back
to redis-py for anything but plain ``str``/``bytes``/``int``/``float`` arguments, command
names with a space (``"CLIENT SETNAME"``: redis-py splits those), or an encoding other
than strict UTF-8. The bytes on the wire are identical (``tests/broker/test_packing.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["fast_packing"]

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack
except ImportError:  # the hiredis extra is not installed: redis-py packs
    _pack = None

_PLAIN = frozenset({str, bytes, int, float})


class _FastPacking:
    """Mixin for a redis-py asyncio connection class (see the module docstring)."""

    encoder: Any

    def pack_command(self, *args: Any) -> list[bytes]:
        if (
            _pack is not None
            and args
            and _plain_name(args[0])
            and self.encoder.encoding == "utf-8"
            and self.encoder.encoding_errors == "strict"
            and all(type(arg) in _PLAIN for arg in args)
        ):
            return [_pack(args)]
        return super().pack_command(*args)  # type: ignore[misc, no-any-return]


def _plain_name(name: Any) -> bool:
    """A command name redis-py sends as one argument."""
    if type(name) is str:
        return " " not in name
    return type(name) is bytes and b" " not in name


_made: dict[type[Any], type[Any]] = {}


def fast_packing(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` packing in C when hiredis is installed (else itself); one
    class per base class."""
    if _pack is None or issubclass(connection_class, _FastPacking):
        return connection_class
    made = _made.get(connection_class)
    if made is None:
        made = _made[connection_class] = type(
            connection_class.__name__, (_FastPacking, connection_class), {"__module__": __name__}
        )
    return made
