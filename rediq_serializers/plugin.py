"""Entry point ``serializers``: registers every built-in serializer by name."""

from __future__ import annotations

from rediq_core.hookspecs import RegisterSerializer
from rediq_core.plugins import hookimpl

from .formats import (
    CloudpickleSerializer,
    JsonSerializer,
    MsgpackSerializer,
    OrjsonSerializer,
    PickleSerializer,
)

__all__ = ["rediq_register_serializers"]


@hookimpl(trylast=True)
def rediq_register_serializers(register: RegisterSerializer) -> None:
    for serializer in (
        JsonSerializer,
        PickleSerializer,
        OrjsonSerializer,
        CloudpickleSerializer,
        MsgpackSerializer,
    ):
        register(serializer.name, serializer)
