"""Render the reference pages from the code they describe.

- docs/hooks.md from the docstrings in rediq_core/hookspecs.py;
- docs/configuration.md from the constants and ``#:`` comments in rediq_core/defaults.py,
  then those of every settings module a plugin registers (``rediq_register_settings``),
  one section per plugin.

Run ``python docs/generate.py`` after changing either; a test fails while a committed page
differs from what this renders.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

from rediq_core import defaults, hookspecs
from rediq_core.plugins import PluginHost, make_plugin_host

HOOKS_PAGE = Path(__file__).with_name("hooks.md")
CONFIGURATION_PAGE = Path(__file__).with_name("configuration.md")
BANNER = re.compile(r"^# -+\n# (?P<title>[^\n]+)\n# -+$", re.MULTILINE)


def hook_names() -> list[str]:
    return [name for name in vars(hookspecs) if name.startswith("rediq_")]


def _sections() -> list[tuple[int, str]]:
    source = inspect.getsource(hookspecs)
    return [(source[: m.start()].count("\n") + 1, m["title"]) for m in BANNER.finditer(source)]


def _describe(name: str) -> str:
    fn = getattr(hookspecs, name)
    doc = inspect.cleandoc(fn.__doc__ or "")
    doc = re.sub(r"^:param (\w+):", r"- `\1`:", doc, flags=re.MULTILINE)
    doc = re.sub(
        r":(?:class|exc|data|func):`~?([\w.]+)`", lambda m: f"`{m[1].split('.')[-1]}`", doc
    )
    kind = "async allowed" if "MaybeAwaitable" in str(fn.__annotations__.get("return")) else "sync"
    signature = f"{name}({', '.join(inspect.signature(fn).parameters)})"
    return f"### `{signature}`\n\n*{kind}*\n\n{doc}\n"


def render_hooks() -> str:
    sections = _sections()
    source_lines = inspect.getsource(hookspecs)
    parts = [
        "# Hook reference\n",
        "Generated from `rediq_core/hookspecs.py` by `python docs/generate.py`;"
        " do not edit by hand. See [Writing plugins](plugins.md) for how to implement them.\n",
        inspect.cleandoc(hookspecs.__doc__ or "").partition("\n\n")[2] + "\n",
    ]
    current = None
    for name in hook_names():
        line = source_lines[: source_lines.index(f"def {name}(")].count("\n") + 1
        title = max((s for s in sections if s[0] < line), default=(0, "Hooks"))[1]
        if title != current:
            parts.append(f"## {title}\n")
            current = title
        parts.append(_describe(name))
    return "\n".join(parts)


CONFIGURATION_INTRO = """# Configuration and defaults

Every default of the core lives in `rediq_core/defaults.py`, and every plugin's in the
settings module it registers; this page is generated from them by
`python docs/generate.py`. Override per task with `@app.task(...)`, per call with
`.options(...)`, per app with `Rediq(...)`, per worker with `rediq worker` options.

"""
TABLE_HEAD = "| constant | value | meaning |\n|---|---|---|\n"
PLUGIN_SETTINGS_INTRO = """
## Settings of the plugins

Each plugin publishes its own settings module through the `rediq_register_settings` hook;
the sections below are generated from the plugins installed with `rediq[all]`.
"""


def render_configuration(host: PluginHost | None = None) -> str:
    """The core's defaults, then one section per plugin settings module (sorted)."""
    registered = (host or make_plugin_host(autoload=False)).settings().values()
    parts = [CONFIGURATION_INTRO, TABLE_HEAD, _rows(defaults)]
    if registered:
        parts.append(PLUGIN_SETTINGS_INTRO)
    for registration in sorted(registered, key=lambda r: (r.plugin, r.name)):
        module = registration.value
        parts.append(f"\n### {registration.plugin}\n\n`{module.__name__}`\n\n")
        parts.append(TABLE_HEAD + _rows(module))
    return "".join(parts)


def _rows(module: ModuleType) -> str:
    """One table row per annotated constant, with the ``#:`` comment above it (a group of
    constants shares the comment of its first)."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    rows = []
    comment = ""
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above = []
        index = node.lineno - 2
        while index >= 0 and lines[index].startswith("#:"):
            above.insert(0, lines[index][2:].strip())
            index -= 1
        line = lines[node.lineno - 1]
        trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
        comment = " ".join(above) or trailing or comment  # a group shares its comment
        value = ast.get_source_segment(source, node.value)
        rows.append(f"| `{node.target.id}` | `{value}` | {comment} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    for page, text in ((HOOKS_PAGE, render_hooks()), (CONFIGURATION_PAGE, render_configuration())):
        page.write_text(text)
        sys.stdout.write(f"wrote {page}\n")
