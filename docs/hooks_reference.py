"""Render docs/hooks.md from the docstrings in rediq_core/hookspecs.py.

Run ``python docs/hooks_reference.py`` after changing a hook; a test fails while the
committed page differs from what this renders.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from rediq_core import hookspecs

PAGE = Path(__file__).with_name("hooks.md")
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


def render() -> str:
    sections = _sections()
    source_lines = inspect.getsource(hookspecs)
    parts = [
        "# Hook reference\n",
        "Generated from `rediq_core/hookspecs.py` by `python docs/hooks_reference.py`;"
        " do not edit by hand. See [Writing plugins](plugins.md) for how to implement them.\n",
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


if __name__ == "__main__":
    PAGE.write_text(render())
    sys.stdout.write(f"wrote {PAGE}\n")
