"""No code of the core names a plugin: plugins reach the core through hooks only.

The scan reads the code of every ``rediq_core`` module (names, attributes, imports and
string constants; docstrings and comments are prose and may say what a hook is good
for) and fails on a plugin's entry-point name used as a string (a lookup by name), a
plugin's package, or an observability word (``--metrics-port``, ``PROMETHEUS_...``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from collections.abc import Iterator
from pathlib import Path

import rediq_core

CORE = Path(rediq_core.__file__).parent
#: Plugin names that are also the core's own vocabulary: ``redis://`` is the default broker
#: URL and "serializers" a kind of registration. Their packages are still checked.
CORE_WORDS = frozenset({"redis", "serializers"})
#: Words of the observability plugins, wherever they appear in code.
OBSERVABILITY = re.compile(r"prometheus|metrics|dashboard|otel|opentelemetry", re.IGNORECASE)


def _own_plugins() -> dict[str, str]:
    """Entry-point name -> top-level package of rediq's own plugins."""
    dist = importlib.metadata.distribution("rediq")
    return {
        ep.name: ep.value.split(".")[0].split(":")[0]
        for ep in dist.entry_points
        if ep.group == "rediq"
    }


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _words(tree: ast.AST) -> Iterator[tuple[int, str, bool]]:
    """(line, text, is a string constant) of every name and string in the code."""
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docs:
                yield line, node.value, True
        elif isinstance(node, ast.Name):
            yield line, node.id, False
        elif isinstance(node, ast.Attribute):
            yield line, node.attr, False
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.alias):
            yield line, node.name, False
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, node.module, False
        elif isinstance(node, ast.arg):
            yield line, node.arg, False


def plugin_mentions(source: str, plugins: dict[str, str]) -> list[tuple[int, str]]:
    """Where ``source`` names one of ``plugins`` (or an observability word) in code."""
    packages = re.compile(rf"\b({'|'.join(map(re.escape, set(plugins.values())))})\b")
    names = set(plugins) - CORE_WORDS
    schemes = re.compile(rf"\b({'|'.join(map(re.escape, names))})://")
    found = []
    for line, text, is_string in _words(ast.parse(source)):
        if (
            (is_string and text.strip().lower() in names)
            or packages.search(text)
            or (is_string and schemes.search(text))
            or OBSERVABILITY.search(text)
        ):
            found.append((line, text))
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    plugins = {"prometheus": "rediq_prometheus", "memory": "rediq_memory"}
    code = (
        '"""Docstrings may say prometheus and memory://."""\n'
        "import os\n"
        "# a comment may say prometheus\n"
        'plugin = host.pm.get_plugin("prometheus")\n'
        "from rediq_memory.broker import MemoryBroker\n"
        'os.environ["REDIQ_METRICS_PORT"] = "1"\n'
        'url = "memory://"\n'
        "error = BrokerOutOfMemoryError\n"
    )
    assert sorted({line for line, _ in plugin_mentions(code, plugins)}) == [4, 5, 6, 7]


def test_no_core_code_names_a_plugin() -> None:
    plugins = _own_plugins()
    assert {"prometheus", "otel", "dashboard", "memory", "redis"} <= set(plugins)
    found = [
        f"{path.relative_to(CORE.parent)}:{line}: {text!r}"
        for path in sorted(CORE.rglob("*.py"))
        for line, text in plugin_mentions(path.read_text(), plugins)
    ]
    assert not found, "the core names plugins in code:\n" + "\n".join(found)
