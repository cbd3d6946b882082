"""The distribution's metadata: each requirement once, the tested redis-py range pinned
(rediq_redis uses one of its private modules), and the version written in one place."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import rediq

PROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())[
    "project"
]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def test_no_requirement_is_listed_twice() -> None:
    lists = {"dependencies": PROJECT["dependencies"], **PROJECT["optional-dependencies"]}
    for where, requirements in lists.items():
        names = [_name(r) for r in requirements]
        twice = sorted({n for n in names if names.count(n) > 1})
        assert not twice, f"{where} lists {twice} more than once"


def test_redis_py_is_pinned_to_the_tested_range() -> None:
    (redis,) = [r for r in PROJECT["dependencies"] if _name(r) == "redis"]
    assert "<" in redis, f"{redis!r} has no upper bound (rediq_redis imports redis._parsers)"


def test_the_version_is_written_once() -> None:
    assert "version" not in PROJECT, "pyproject.toml repeats the version: read it dynamically"
    assert "version" in PROJECT.get("dynamic", [])
    assert importlib.metadata.version("rediq") == rediq.__version__
