"""Facts the docs and examples state, checked against the code they describe: a doc that
drifts from the code fails here instead of misleading a reader."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

from rediq_core import defaults
from rediq_core.roles import PROTOCOLS

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "README.zh.md", *(ROOT / "docs").glob("*.md")])


def test_every_code_fence_stands_on_a_line_of_its_own() -> None:
    broken = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()[:60]}"
        for page in PAGES
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if "```" in line and not re.fullmatch(r"\s*```+[\w+-]*\s*", line)
    ]
    assert not broken, "code fences run into text:\n" + "\n".join(broken)


def test_every_page_closes_its_code_fences() -> None:
    unclosed = [
        str(page.relative_to(ROOT))
        for page in PAGES
        if sum(1 for line in page.read_text().splitlines() if line.lstrip().startswith("```")) % 2
    ]
    assert not unclosed, f"pages with an unclosed code fence: {unclosed}"


def test_the_worker_page_states_the_lease_defaults() -> None:
    page = (ROOT / "docs" / "worker.md").read_text()
    lease = f"{defaults.LEASE_MS:,}".replace(",", " ")
    renew = f"{defaults.LEASE_RENEW_MS:,}".replace(",", " ")
    assert f"`REDIQ_LEASE_MS` (default {lease};" in page, f"docs/worker.md: lease default {lease}"
    assert f"default {renew}" in page, f"docs/worker.md: renewal default {renew}"


def test_the_readme_names_every_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for readme in ("README.md", "README.zh.md"):
        install = (ROOT / readme).read_text().split("```shell")[3]  # the install block
        missing = [name for name in extras if name not in ("test", "dev") and name not in install]
        assert not missing, f"{readme}'s install block does not name the extras {missing}"


def test_the_plugin_guide_lists_every_broker_method_by_role() -> None:
    page = (ROOT / "docs" / "plugins.md").read_text()
    guide = page[page.index("## Writing a broker") :]
    guide = guide[: guide.index("## Adding a control command")]
    methods = [
        name
        for protocol in PROTOCOLS.values()
        for name, member in vars(protocol).items()
        if not name.startswith("_") and inspect.isfunction(member)
    ]
    assert len(methods) > 30
    missing = [name for name in methods if f"`{name}" not in guide]
    assert not missing, f"docs/plugins.md 'Writing a broker' does not list {missing}"


def test_the_examples_use_only_the_public_api() -> None:
    internal = [
        f"{path.name}: {needle}"
        for path in sorted((ROOT / "examples").glob("*.py"))
        if path.name != "run_tutorial.py"  # the tutorial command's runner, not an example
        for needle in ("get_broker(", "rediq_core.", "from rediq_core")
        if needle in path.read_text()
    ]
    assert not internal, f"examples reach into internals: {internal}"
