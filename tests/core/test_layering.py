"""The import graph of the packages, read from the source (``ast``; nothing is imported).

Four rules (ARCHITECTURE §2, docs/internals.md):

1. ``rediq_core`` imports no redis-py and no plugin package, not even for typing and not
   in its testing package: it finds plugins through entry points.
2. Production code never imports a testing package (``rediq_core.testing``,
   ``rediq_redis.testing``, ``rediq.testing``); only those packages themselves may.
3. No import circle among ``rediq_core``'s modules. Edges are the *runtime* imports:
   module-level ones and function-local ones; imports under ``if TYPE_CHECKING:`` do not
   count (annotations are strings, nothing runs them). A function-local import counts
   because it runs all the same, only later: one that closes a circle couples the two
   modules both ways and merely moves the failure from import time to call time.
4. The core's layers (:data:`LAYERS`): no module imports a module of a higher layer at
   module level. A function-local import of a higher layer is allowed: that is how a lower
   layer starts a higher one on demand without loading it at import time (``lifespan``
   starts a worker only with ``worker=True``), and rule 3 still forbids it to close a
   circle.

The package face ``rediq_core/__init__.py`` re-exports the API from every layer; it is
no layer and no module imports it (modules import the module that defines a name).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = "rediq_core"
PLUGINS = frozenset(
    {
        "rediq_redis",
        "rediq_memory",
        "rediq_serializers",
        "rediq_prometheus",
        "rediq_otel",
        "rediq_dashboard",
    }
)
PACKAGES = ("rediq", CORE, *sorted(PLUGINS))
TESTING = ("rediq_core.testing", "rediq_redis.testing", "rediq.testing")

#: The layers of rediq_core, lowest first; a module imports only its own layer and the ones
#: below at module level. A name ending in ``.*`` covers a subpackage and its modules.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "records",
        frozenset(
            {
                "defaults",
                "errors",
                "urls",
                "message",
                "records",
                "info",
                "serializer",
                "diagnosis",
                "inspection",
                "history",
                "scaling",
                "waits",
                "cron_records",
                "workflow_records",
                "flow",
                "crontab",
                "markers",
                "hookspecs",
                "roles",
                "tasklogs",
                "task_events",
                "shards",
                "shard_views",
            }
        ),
    ),
    ("contract", frozenset({"broker", "options", "retry", "signing", "context", "logs"})),
    ("plugins", frozenset({"plugins.*", "executors"})),
    (
        "api",
        frozenset(
            {
                "task",
                "canvas",
                "workflows",
                "handle",
                "producer",
                "cron",
                "control",
                "app",
                "sync",
                "lifespan",
            }
        ),
    ),
    ("worker", frozenset({"worker.*"})),
    ("cli", frozenset({"cli.*"})),
)


@dataclass(frozen=True)
class Import:
    module: str  # what is imported, absolute
    line: int
    runtime: bool  # not under ``if TYPE_CHECKING:``
    module_level: bool  # not inside a function


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: tuple[Import, ...]

    @property
    def relpath(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _imported(node: ast.AST, package: str, known: frozenset[str]) -> Iterator[tuple[str, int]]:
    """What one statement or call imports: absolute module names, with the line."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            full = f"{base}.{alias.name}"
            # ``from pkg import submodule`` imports the submodule; else the name's module
            yield (full if full in known else base), node.lineno
    elif (
        isinstance(node, ast.Call)
        and ast.unparse(node.func).endswith("import_module")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        yield node.args[0].value, node.lineno


def _imports(name: str, path: Path, known: frozenset[str]) -> Iterator[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def walk(node: ast.AST, runtime: bool, module_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.body:
                    yield from walk_one(sub, False, module_level)
                for sub in child.orelse:
                    yield from walk_one(sub, runtime, module_level)
            else:
                yield from walk_one(child, runtime, module_level)

    def walk_one(node: ast.AST, runtime: bool, module_level: bool) -> Iterator[Import]:
        for module, line in _imported(node, package, known):
            yield Import(module, line, runtime, module_level)
        inside_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from walk(node, runtime, module_level and not inside_function)

    yield from walk(ast.parse(path.read_text(), str(path)), True, True)


def _modules() -> dict[str, Module]:
    paths = {_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}
    known = frozenset(paths)
    return {
        name: Module(name, path, tuple(_imports(name, path, known))) for name, path in paths.items()
    }


MODULES = _modules()


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_testing(name: str) -> bool:
    return any(_within(name, package) for package in TESTING)


def _core_modules() -> dict[str, Module]:
    """rediq_core's production modules, without the package face."""
    return {
        name: module
        for name, module in MODULES.items()
        if _within(name, CORE) and name != CORE and not _is_testing(name)
    }


def _layer(name: str) -> int:
    short = name.removeprefix(CORE + ".")
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if short == member or (
                member.endswith(".*") and _within(short, member.removesuffix(".*"))
            ):
                return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/internals.md")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_core_imports_no_redis_and_no_plugin() -> None:
    wrong = [
        f"{module.relpath}:{imp.line} imports {imp.module}"
        for name, module in MODULES.items()
        if _within(name, CORE)
        for imp in module.imports
        if imp.module.split(".")[0] in PLUGINS | {"redis"}
    ]
    assert not wrong, "rediq_core must find plugins through entry points:\n" + "\n".join(wrong)


def test_production_code_imports_no_testing_package() -> None:
    wrong = [
        f"{module.relpath}:{imp.line} imports {imp.module}"
        for name, module in MODULES.items()
        if not _is_testing(name)
        for imp in module.imports
        if _is_testing(imp.module)
    ]
    assert not wrong, "production code imports a testing package:\n" + "\n".join(wrong)


def _runtime_edges(*, module_level_only: bool) -> dict[str, dict[str, int]]:
    """module -> {imported core module: line}, runtime imports only."""
    core = _core_modules()
    return {
        name: {
            imp.module: imp.line
            for imp in module.imports
            if imp.runtime
            and (imp.module_level or not module_level_only)
            and imp.module in core
            and imp.module != name
        }
        for name, module in core.items()
    }


def test_no_import_circle_in_the_core() -> None:
    edges = _runtime_edges(module_level_only=False)
    cycles = _cycles({name: set(targets) for name, targets in edges.items()})
    described = [
        " <-> ".join(cycle)
        + "".join(
            f"\n    {source} -> {target} (line {edges[source][target]})"
            for source in cycle
            for target in sorted(edges[source])
            if target in cycle
        )
        for cycle in cycles
    ]
    assert not cycles, "import circles (put type-only imports under TYPE_CHECKING):\n" + (
        "\n".join(described)
    )


def test_every_core_module_has_a_layer() -> None:
    for name in _core_modules():
        _layer(name)
    short = {name.removeprefix(CORE + ".") for name in _core_modules()}
    stale = [
        member
        for _, members in LAYERS
        for member in members
        if member.removesuffix(".*") not in short
    ]
    assert not stale, f"LAYERS lists modules that do not exist: {stale}"


def test_no_core_module_imports_a_higher_layer_at_module_level() -> None:
    wrong = [
        f"{source} ({LAYERS[_layer(source)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        f" at line {line}"
        for source, targets in _runtime_edges(module_level_only=True).items()
        for target, line in targets.items()
        if _layer(target) > _layer(source)
    ]
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def test_the_layers_are_documented() -> None:
    page = (ROOT / "docs" / "internals.md").read_text()
    for layer, members in LAYERS:
        assert f"**{layer}**" in page, f"layer {layer!r} is missing from docs/internals.md"
        for member in members:
            assert f"`{member}`" in page, f"{member} is missing from docs/internals.md"


def test_the_scan_sees_what_it_checks() -> None:
    """The rules above pass vacuously if the scan finds nothing: check it finds a known
    runtime import, a type-only one and a function-local one."""
    app = {imp.module: imp for imp in MODULES["rediq_core.app"].imports}
    assert app["rediq_core.broker"].runtime and app["rediq_core.broker"].module_level
    cron = {imp.module: imp for imp in MODULES["rediq_core.cron"].imports}
    assert not cron["rediq_core.app"].runtime
    lifespan = {imp.module: imp for imp in MODULES["rediq_core.lifespan"].imports}
    assert not lifespan["rediq_core.worker.inprocess"].module_level
    sentinel = {imp.module: imp for imp in MODULES["rediq_redis.testing.sentinel"].imports}
    assert sentinel["redis"].runtime
