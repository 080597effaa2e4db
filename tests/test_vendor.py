"""Vendored third-party files stay byte-for-byte what was published and recorded.

The softphone page and docs/WEBRTC-SIGNALLING.md both assume one exact build of the Telnyx
WebRTC SDK; an edited, re-minified or half-upgraded bundle would break that silently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parent.parent / "static" / "vendor"
SUMS_FILES = sorted(VENDOR.rglob("SHA256SUMS"))
NOT_LISTED = {"SHA256SUMS", "VENDOR.md", "README.md"}


def _recorded(sums: Path) -> dict[str, str]:
    recorded: dict[str, str] = {}
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        recorded[name.lstrip("*")] = digest.lower()
    return recorded


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vendor__telnyx_webrtc_is_pinned_with_checksums() -> None:
    sums = VENDOR / "telnyx-webrtc" / "2.27.10" / "SHA256SUMS"
    assert sums in SUMS_FILES
    assert set(_recorded(sums)) == {"bundle.js", "bundle.mjs", "LICENSE"}


@pytest.mark.parametrize("sums", SUMS_FILES, ids=lambda p: str(p.parent.relative_to(VENDOR)))
def test_vendor__every_file_matches_its_recorded_sha256(sums: Path) -> None:
    recorded = _recorded(sums)
    actual = {name: _sha256(sums.parent / name) for name in recorded}
    assert actual == recorded


@pytest.mark.parametrize("sums", SUMS_FILES, ids=lambda p: str(p.parent.relative_to(VENDOR)))
def test_vendor__no_unrecorded_file_beside_the_checksums(sums: Path) -> None:
    present = {p.name for p in sums.parent.iterdir() if p.is_file()} - NOT_LISTED
    assert present == set(_recorded(sums))


@pytest.mark.parametrize("sums", SUMS_FILES, ids=lambda p: str(p.parent.relative_to(VENDOR)))
def test_vendor__vendor_md_states_the_same_digests(sums: Path) -> None:
    notes = sums.parent / "VENDOR.md"
    text = notes.read_text()
    missing = sorted(name for name, digest in _recorded(sums).items() if digest not in text)
    assert missing == []
