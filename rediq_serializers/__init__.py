"""rediq's built-in serializers: json, pickle, orjson, cloudpickle, msgpack.

Registered through the ``rediq`` entry-point group (``rediq_serializers.plugin``), exactly
like a third-party plugin.
"""

from __future__ import annotations

from .formats import (
    CloudpickleSerializer,
    JsonSerializer,
    MsgpackSerializer,
    OrjsonSerializer,
    PickleSerializer,
)

__all__ = [
    "CloudpickleSerializer",
    "JsonSerializer",
    "MsgpackSerializer",
    "OrjsonSerializer",
    "PickleSerializer",
]
