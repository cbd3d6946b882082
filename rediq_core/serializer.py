"""The serializer contract. Implementations live in plugins (``rediq_serializers``)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """Turns task arguments and results into bytes and back.

    ``dumps`` must raise ``TypeError`` or ``ValueError`` for a value it cannot carry, so
    the error surfaces at enqueue time. ``executes_code_on_load`` is True for formats
    (the pickle family) whose ``loads`` can run arbitrary code: never accept those from
    an untrusted Redis.
    """

    name: str
    executes_code_on_load: bool

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...
