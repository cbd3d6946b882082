"""The serializer classes. Optional libraries are imported when a serializer is built."""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

from rediq_core.errors import PluginUnavailableError

__all__ = [
    "CloudpickleSerializer",
    "JsonSerializer",
    "MsgpackSerializer",
    "OrjsonSerializer",
    "PickleSerializer",
]


def _require(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise PluginUnavailableError(
            f"the {extra} serializer needs the {module} package: pip install 'rediq[{extra}]'"
        ) from None


class JsonSerializer:
    """Standard-library JSON: str, int, float, bool, None, lists and dicts. No bytes."""

    name = "json"
    executes_code_on_load = False

    def dumps(self, value: Any) -> bytes:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class PickleSerializer:
    """Standard-library pickle (highest protocol). Executes code on load: trusted Redis only."""

    name = "pickle"
    executes_code_on_load = True

    def __init__(self) -> None:
        # imported when an app picks this serializer, not when the plugin registers it
        # (an idle worker of a json app imports nothing it does not use)
        import pickle

        self._pickle = pickle

    def dumps(self, value: Any) -> bytes:
        try:
            return self._pickle.dumps(value, protocol=self._pickle.HIGHEST_PROTOCOL)
        except (self._pickle.PicklingError, AttributeError) as exc:
            raise TypeError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        return self._pickle.loads(data)


class OrjsonSerializer:
    """orjson: fast JSON; also dataclasses, datetimes, UUIDs and numpy arrays (as lists)."""

    name = "orjson"
    executes_code_on_load = False

    def __init__(self) -> None:
        self._orjson = _require("orjson", "orjson")

    def dumps(self, value: Any) -> bytes:
        try:
            return self._orjson.dumps(value)  # type: ignore[no-any-return]
        except self._orjson.JSONEncodeError as exc:
            raise TypeError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        return self._orjson.loads(data)


class CloudpickleSerializer:
    """cloudpickle: pickle plus lambdas and local functions. Executes code on load."""

    name = "cloudpickle"
    executes_code_on_load = True

    def __init__(self) -> None:
        import pickle

        self._cloudpickle = _require("cloudpickle", "cloudpickle")
        self._pickle = pickle

    def dumps(self, value: Any) -> bytes:
        try:
            return self._cloudpickle.dumps(value, protocol=self._pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
        except (self._pickle.PicklingError, AttributeError) as exc:
            raise TypeError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        return self._pickle.loads(data)


class MsgpackSerializer:
    """MessagePack: compact binary; bytes are kept, tuples come back as lists."""

    name = "msgpack"
    executes_code_on_load = False

    def __init__(self) -> None:
        self._msgpack = _require("msgpack", "msgpack")

    def dumps(self, value: Any) -> bytes:
        return self._msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False)
