"""Render the reference pages from the code they describe.

- docs/hooks.md from the docstrings in rediq_core/hookspecs.py;
- docs/configuration.md from the constants and ``#:`` comments in rediq_core/defaults.py.

Run ``python docs/generate.py`` after changing either; a test fails while a committed page
differs from what this renders.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from pathlib import Path

from rediq_core import defaults, hookspecs

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

Every default lives in `rediq_core/defaults.py`; this page is generated from it by
`python docs/generate.py`. Override per task with `@app.task(...)`, per call with
`.options(...)`, per app with `Rediq(...)`, per worker with `rediq worker` options.

| constant | value | meaning |
|---|---|---|
"""


def render_configuration() -> str:
    source = inspect.getsource(defaults)
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
    return CONFIGURATION_INTRO + "\n".join(rows) + "\n"


if __name__ == "__main__":
    for page, text in ((HOOKS_PAGE, render_hooks()), (CONFIGURATION_PAGE, render_configuration())):
        page.write_text(text)
        sys.stdout.write(f"wrote {page}\n")
