"""The README's links to files of the repository work in a clone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)\)")


def test_readme_links_to_files_that_are_in_the_repository() -> None:
    links = [
        target
        for target in LINK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
        if "://" not in target and not target.startswith("mailto:")
    ]
    assert any(target.startswith("docs/screenshots/") for target in links)
    missing = [target for target in links if not (ROOT / target).is_file()]
    assert missing == []
    for target in links:
        if target.endswith(".png"):
            assert (ROOT / target).stat().st_size < 200_000, target  # small copies
            assert (ROOT / target).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target
