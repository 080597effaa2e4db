"""The Telnyx OpenAPI request schemas, and a small validator that enforces them.

The sandbox must reject what the real API rejects, so request bodies are checked against
Telnyx's own schemas rather than hand-written rules. ``spec_schemas.json`` beside this
module holds the schemas of the request bodies (and of ``CredentialConnection``, whose
defaults fill our responses), reduced to the keywords that matter for validation. It is
derived from ``tests/contract/telnyx/telnyx-openapi-subset.yml`` and regenerated with::

    python -m devserver.sandbox.spec tests/contract/telnyx/telnyx-openapi-subset.yml

(``tests/contract/test_spec_files.py`` fails while it is stale.)

The validator covers the JSON Schema keywords that file uses: ``type`` (also lists),
``enum``, ``required``, ``properties``, ``additionalProperties``, ``items``, ``oneOf``
(with ``discriminator``), ``minimum``/``maximum``, ``minLength``/``maxLength``,
``maxItems``, ``multipleOf``, ``pattern`` and the formats ``uuid``, ``uri``, ``int32``
and ``date-time``.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCHEMA_FILE = Path(__file__).with_name("spec_schemas.json")
_KEEP = {
    "type", "enum", "$ref", "properties", "required", "items", "additionalProperties",
    "oneOf", "anyOf", "allOf", "discriminator", "minimum", "maximum", "minLength",
    "maxLength", "minItems", "maxItems", "multipleOf", "pattern", "format", "default",
}  # fmt: skip
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Violation:
    """One way a request body breaks its schema; ``kind`` picks the Telnyx error code."""

    kind: str  # missing | type | enum | range | length | format | pattern
    pointer: str  # RFC 6901, e.g. "/to" or "/inbound/channel_limit"
    detail: str


@cache
def _document() -> dict[str, Any]:
    with SCHEMA_FILE.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def schema(name: str) -> dict[str, Any]:
    """The (reduced) component schema called ``name``."""
    found: dict[str, Any] = _document()["schemas"][name]
    return found


def request_schema(operation: str) -> dict[str, Any] | None:
    """The request body schema of an operationId, or None when it takes no body."""
    name = _document()["request_bodies"].get(operation)
    return schema(name) if name else None


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema(node["$ref"].rsplit("/", 1)[-1])
    return node


def _param(pointer: str) -> str:
    return pointer.rsplit("/", 1)[-1] or "body"


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if expected == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, int | float)
    return True


def _format_ok(value: Any, fmt: str) -> bool:
    if fmt == "uuid" and isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            return False
    elif fmt == "uri" and isinstance(value, str):
        parts = urlsplit(value)
        return bool(parts.scheme and (parts.netloc or parts.path))
    elif fmt == "int32" and isinstance(value, int) and not isinstance(value, bool):
        return _INT32[0] <= value <= _INT32[1]
    elif fmt == "date-time" and isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
    return True


def validate(value: Any, node: dict[str, Any], pointer: str = "") -> list[Violation]:
    """Every violation of ``node`` by ``value`` (empty when the value is valid)."""
    node = _resolve(node)
    name = _param(pointer)
    types = node.get("type")
    if types is not None:
        wanted = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, t) for t in wanted):
            shown = " or ".join(repr(t) for t in wanted if t != "null")
            return [Violation("type", pointer, f"The '{name}' parameter must be of type {shown}.")]
    if "enum" in node and value not in node["enum"]:
        allowed = ", ".join(str(v) for v in node["enum"] if v is not None)
        return [Violation("enum", pointer, f"The value must be one of: {allowed}.")]
    if "oneOf" in node or "anyOf" in node:
        found = _check_choice(value, node, pointer)
        if found:
            return found
    out: list[Violation] = []
    for sub in node.get("allOf", []):
        out += validate(value, sub, pointer)
    if isinstance(value, dict):
        out += _check_object(value, node, pointer)
    elif isinstance(value, list):
        out += _check_array(value, node, pointer)
    elif isinstance(value, str):
        out += _check_string(value, node, pointer, name)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out += _check_number(value, node, pointer)
    fmt = node.get("format")
    if fmt and not _format_ok(value, fmt):
        out.append(Violation("format", pointer, f"The '{name}' parameter must be a valid {fmt}."))
    return out


def _check_choice(value: Any, node: dict[str, Any], pointer: str) -> list[Violation]:
    branches = node.get("oneOf") or node.get("anyOf") or []
    disc = node.get("discriminator")
    if disc and isinstance(value, dict):
        key = disc["propertyName"]
        target = disc.get("mapping", {}).get(value.get(key))
        if target is None:
            allowed = ", ".join(sorted(disc.get("mapping", {})))
            return [Violation("enum", f"{pointer}/{key}", f"The value must be one of: {allowed}.")]
        return validate(value, {"$ref": target}, pointer)
    results = [validate(value, branch, pointer) for branch in branches]
    if any(not r for r in results):
        return []
    # Report the branch that came closest (fewest violations), as a person would read it.
    return min(results, key=len)


def _check_object(value: dict[str, Any], node: dict[str, Any], pointer: str) -> list[Violation]:
    out: list[Violation] = []
    for key in node.get("required", []):
        if value.get(key) in (None, ""):
            detail = f"The '{key}' parameter is required and cannot be blank."
            out.append(Violation("missing", f"{pointer}/{key}", detail))
    props: dict[str, Any] = node.get("properties", {})
    extra = node.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            if item is None and key in node.get("required", []):
                continue  # already reported as missing
            out += validate(item, props[key], f"{pointer}/{key}")
        elif isinstance(extra, dict):
            out += validate(item, extra, f"{pointer}/{key}")
    return out


def _check_array(value: list[Any], node: dict[str, Any], pointer: str) -> list[Violation]:
    out: list[Violation] = []
    name = _param(pointer)
    if "maxItems" in node and len(value) > node["maxItems"]:
        out.append(Violation("length", pointer, f"The '{name}' parameter has too many items."))
    if "minItems" in node and len(value) < node["minItems"]:
        out.append(Violation("length", pointer, f"The '{name}' parameter has too few items."))
    if isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            out += validate(item, node["items"], f"{pointer}/{i}")
    return out


def _check_string(value: str, node: dict[str, Any], pointer: str, name: str) -> list[Violation]:
    out: list[Violation] = []
    if "maxLength" in node and len(value) > node["maxLength"]:
        detail = f"The '{name}' parameter must be at most {node['maxLength']} characters long."
        out.append(Violation("length", pointer, detail))
    if "minLength" in node and len(value) < node["minLength"]:
        detail = f"The '{name}' parameter must be at least {node['minLength']} characters long."
        out.append(Violation("length", pointer, detail))
    if "pattern" in node and not re.search(node["pattern"], value):
        detail = f"The '{name}' parameter does not match {node['pattern']}."
        out.append(Violation("pattern", pointer, detail))
    return out


def _check_number(value: float, node: dict[str, Any], pointer: str) -> list[Violation]:
    low, high = node.get("minimum"), node.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{'-inf' if low is None else low} to {'inf' if high is None else high}"
        return [Violation("range", pointer, f"The value is outside of allowed range {span}")]
    step = node.get("multipleOf")
    if step and value % step:
        return [Violation("range", pointer, f"The value must be a multiple of {step}")]
    return []


def _allows_null(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return (
        bool(node.get("nullable")) or kind == "null" or (isinstance(kind, list) and "null" in kind)
    )


def defaults(node: dict[str, Any]) -> dict[str, Any]:
    """An object holding every property default of an object schema, recursively.

    Responses are built from these, so a created resource reads like Telnyx's own.
    """
    node = _resolve(node)
    out: dict[str, Any] = {}
    for key, prop in node.get("properties", {}).items():
        resolved = _resolve(prop)
        if "default" in prop or "default" in resolved:
            value = prop.get("default", resolved.get("default"))
            if value is None and not _allows_null(resolved):
                # The upstream spec has `default: null` on non-nullable fields (see
                # SOURCE.md); answering null there would break its own schema.
                continue
            out[key] = value
        elif resolved.get("type") == "object" and resolved.get("properties"):
            out[key] = defaults(resolved)
    return out


# ---------------------------------------------------------------- regeneration (dev only)


def _strip(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: _strip(sub) for name, sub in value.items()}
        elif key in ("default", "enum", "required", "discriminator"):
            out[key] = value
        else:
            out[key] = _strip(value)
    return out


def build(spec: dict[str, Any]) -> dict[str, Any]:
    """The reduced document written to ``spec_schemas.json`` from a loaded OpenAPI spec."""
    components: dict[str, Any] = dict(spec["components"]["schemas"])
    shared = spec["components"].get("requestBodies", {})
    bodies: dict[str, str] = {}
    for item in spec["paths"].values():
        for op in item.values():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            request_body = op.get("requestBody", {})
            name = None
            if "$ref" in request_body:  # a shared request body, e.g. DeleteRecordingsRequest
                name = request_body["$ref"].rsplit("/", 1)[-1]
                request_body = shared[name]
            found = request_body.get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in found:
                bodies[op["operationId"]] = found["$ref"].rsplit("/", 1)[-1]
            elif found and name:  # an inline schema: kept under the request body's name
                components[name] = found
                bodies[op["operationId"]] = name
    wanted: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in wanted:
                    wanted.add(name)
                    collect(components[name])
            for sub in node.values():
                collect(sub)
        elif isinstance(node, list):
            for sub in node:
                collect(sub)

    for name in [*bodies.values(), "CredentialConnection"]:
        wanted.add(name)
        collect(components[name])
    schemas = {name: _strip(components[name]) for name in sorted(wanted)}
    return {"request_bodies": dict(sorted(bodies.items())), "schemas": schemas}


def main(argv: list[str]) -> None:
    """Regenerate ``spec_schemas.json`` from the YAML spec given on the command line."""
    import yaml

    with open(argv[1], encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    SCHEMA_FILE.write_text(json.dumps(build(spec), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv)
