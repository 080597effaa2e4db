"""Every setting the code reads is documented in README.md and .env.example."""

from __future__ import annotations

import re

from tests.conftest import ROOT

SOURCES = [
    ROOT / "config" / "settings.py",
    *sorted((ROOT / "telephony").rglob("*.py")),
    *sorted((ROOT / "dashboard").rglob("*.py")),
]
PATTERNS = [
    re.compile(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"'),
    re.compile(r'getattr\(\s*settings,\s*"((?:TELEPHONY|TELNYX|DJANGO)_[A-Z0-9_]+)"'),
]
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


def _names() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        if "sandbox" in path.parts or "migrations" in path.parts:
            continue
        text = path.read_text()
        for pattern in PATTERNS:
            found.update(pattern.findall(text))
    return (found | {"DATABASE_URL"}) - NOT_SETTINGS


def test_docs__every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in _names() if f"| `{n}` |" not in readme)
    assert missing == []


def test_docs__every_setting_is_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    missing = sorted(n for n in _names() if not re.search(rf"^#? ?{n}=", example, re.M))
    assert missing == []


def test_docs__readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("## ", 1)[0]
    assert "make run" in head and "make test" in head
