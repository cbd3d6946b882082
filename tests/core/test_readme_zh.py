"""README.zh.md stays a faithful counterpart of README.md where it matters most: its two
set-up commands (the ones CI runs from README.md) are byte-identical, and the two READMEs
link to each other."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh.md"
MARKERS = ("tutorial-command", "test-command")


def command_block(text: str, marker: str) -> str:
    """The ```shell block right after ``<!-- marker -->`` (the same rule as .ci/run)."""
    lines = text.splitlines()
    start = lines.index(f"<!-- {marker} -->")
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```shell"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    block = "\n".join(lines[fence + 1 : end])
    assert block.strip(), f"empty command block after <!-- {marker} -->"
    return block


def test_readme_zh_exists() -> None:
    assert README_ZH.is_file(), "README.zh.md is missing"


@pytest.mark.parametrize("marker", MARKERS)
def test_commands_are_identical(marker: str) -> None:
    english = command_block(README.read_text(encoding="utf-8"), marker)
    chinese = command_block(README_ZH.read_text(encoding="utf-8"), marker)
    assert chinese == english, (
        f"README.zh.md's <!-- {marker} --> command differs from README.md's:\n"
        f"README.md:    {english}\nREADME.zh.md: {chinese}"
    )


@pytest.mark.parametrize("marker", MARKERS)
def test_each_marker_appears_once(marker: str) -> None:
    for path in (README, README_ZH):
        count = path.read_text(encoding="utf-8").splitlines().count(f"<!-- {marker} -->")
        assert count == 1, f"{path.name} has <!-- {marker} --> {count} times"


def test_readmes_link_to_each_other() -> None:
    assert "](README.md)" in README_ZH.read_text(encoding="utf-8")
    assert "](README.zh.md)" in README.read_text(encoding="utf-8")


def test_the_check_notices_a_difference() -> None:
    text = README.read_text(encoding="utf-8")
    original = command_block(text, "test-command")
    changed = text.replace(original, original + " -x")
    assert command_block(changed, "test-command") != original
