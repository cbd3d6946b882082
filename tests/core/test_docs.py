"""The docs cover every hook and every default (datasette's test_docs.py habit)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rediq_core import defaults, hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_generate", module)
    spec.loader.exec_module(module)
    return module


def test_every_hook_is_in_the_reference() -> None:
    page = (DOCS / "hooks.md").read_text()
    hooks = [name for name in vars(hookspecs) if name.startswith("rediq_")]
    assert len(hooks) >= 12
    missing = [name for name in hooks if f"### `{name}(" not in page]
    assert not missing, f"hooks missing from docs/hooks.md: {missing}"


def test_generated_pages_are_up_to_date() -> None:
    generator = _generator()
    for page, text in (
        ("hooks.md", generator.render_hooks()),
        ("configuration.md", generator.render_configuration()),
    ):
        assert (DOCS / page).read_text() == text, (
            f"docs/{page} is stale: run `python docs/generate.py`"
        )


def test_every_hook_has_a_documented_parameter_list() -> None:
    for name in (n for n in vars(hookspecs) if n.startswith("rediq_")):
        doc = getattr(hookspecs, name).__doc__ or ""
        assert ":param" in doc, f"{name} has no :param: lines"


def test_every_default_is_documented() -> None:
    page = (DOCS / "configuration.md").read_text()
    names = [n for n in vars(defaults) if n.isupper()]
    missing = [n for n in names if f"`{n}`" not in page]
    assert not missing, f"defaults missing from docs/configuration.md: {missing}"
