"""HTTP byte ranges (RFC 9110 section 14): which part of a file a ``Range`` header asks for.

Pure functions, no I/O. One range per request, which is what media players send (``bytes=0-``
to start, ``bytes=N-`` to seek). A header this cannot parse, or one with several ranges, is
ignored and the whole file is served, as the RFC allows; a well-formed range that lies wholly
past the end of the file is :class:`Unsatisfiable` (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"^(\d*)-(\d*)$")
MAX_DIGITS = 18  # beyond any file size; keeps int() of hostile input cheap


class Unsatisfiable(ValueError):
    """The range lies outside the file: answer 416 with ``Content-Range: bytes */size``."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end``, both included (as in ``Content-Range``)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range ``header`` asks for in a file of ``size`` bytes; None: serve it all."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _SPEC.match(spec.strip())
    if match is None or len(spec) > 2 * MAX_DIGITS + 1:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise Unsatisfiable(header)
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)
