"""Field checks shared by every message shape: one decoder, one error for bad input.

Each shape is a frozen dataclass whose field names are the JSON field names on the wire.
:func:`decode_fields` reads a mapping into keyword arguments: a field that is missing
takes its default (an older sender did not know it), a field of the wrong type is an
error (``InvalidRequest`` with reason ``malformed_<shape>``), and a key the dataclass
does not know is ignored (a newer sender added it), so a rolling deploy can mix versions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from telephony.exceptions import InvalidRequest


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


# Field annotations (strings: ``from __future__ import annotations``) -> their check.
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": _is_int,
    "float": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "str | None": lambda v: v is None or isinstance(v, str),
    "int | None": lambda v: v is None or _is_int(v),
    "float | None": lambda v: v is None or _is_number(v),
    "dict[str, Any]": _is_str_map,
    "dict[str, int]": lambda v: _is_str_map(v) and all(_is_int(n) for n in v.values()),
}


def malformed(shape: str, detail: str) -> InvalidRequest:
    """The one error a decoder raises: says which shape and why, never the raw value."""
    return InvalidRequest(f"Malformed {shape}: {detail}.", reason=f"malformed_{shape}")


def load_mapping(raw: Any, shape: str) -> Mapping[str, Any]:
    """A mapping from a mapping, or from JSON text/bytes as stored in Redis."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = raw.decode()
        except UnicodeDecodeError as e:
            raise malformed(shape, "not UTF-8") from e
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise malformed(shape, "not JSON") from e
    if not isinstance(raw, Mapping):
        raise malformed(shape, "not a mapping")
    return raw


def decode_fields(
    cls: type[Any], data: Mapping[str, Any], shape: str, *, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check ``data`` against the dataclass ``cls``; keyword arguments for its constructor.

    Fields named in ``skip`` are nested shapes the caller decodes itself.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise malformed(shape, f"{f.name} is missing")
            continue
        value = data[f.name]
        check = _CHECKS[str(f.type)]
        if not check(value):
            raise malformed(shape, f"{f.name} is not {f.type}")
        out[f.name] = float(value) if f.type == "float" else value
    return out


def to_json(data: Mapping[str, Any]) -> str:
    """The JSON text stored in Redis (compact, like every writer before it)."""
    return json.dumps(data, separators=(",", ":"))
