"""Fixtures for the contract tests: Telnyx's spec, Prism serving it, our sandbox.

``spec`` loads ``telnyx/telnyx-openapi-subset.yml`` (beside this file, see its SOURCE.md) and
checks HTTP answers and webhook deliveries against it with ``openapi-schema-validator``
(OAS 3.1 dialect, formats checked). Every mismatch becomes a :class:`Problem` naming
the operation, the JSON pointer into the body and the validator's message, because that
is what makes drift fixable. ``prism`` is Stoplight Prism mocking the same file (see
``prism.py``); ``sandbox`` is our own ``telnyx_sandbox`` process. Every process started
here is stopped by pid at the end of the session, also when tests fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.exceptions import ValidationError, best_match
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from devserver.sandbox.control import SandboxProcess
from tests.contract.prism import PrismServer, PrismUnavailable, installed
from tests.helpers import WebhookReceiver, webhook_receiver

SPEC_PATH = Path(__file__).with_name("telnyx") / "telnyx-openapi-subset.yml"
SPEC_URI = "urn:telnyx-openapi-subset"
ERROR_RESPONSE = "#/components/schemas/ErrorResponse"
METHODS = ("get", "put", "post", "delete", "patch")
SANDBOX_ARGS = [
    "--initiated-after", "0.02", "--answer-after", "0.2", "--talk-time", "0.4",
    "--credential-limit", "3", "--webhook-retries", "0",
]  # fmt: skip


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(*parts: object) -> str:
    """An RFC 6901 JSON pointer built from path parts."""
    return "".join(f"/{_escape(p)}" for p in parts)


@dataclass(frozen=True)
class Problem:
    """One way an answer differs from the spec: where, at which JSON pointer, and how."""

    where: str  # "DialCall 422", "webhook callHangup"
    pointer: str  # into the body ("/data/payload/state"), or "" for status/content type
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.pointer or '(response)'}: {self.message}"


def report(problems: list[Problem]) -> str:
    """Problems one per line, for assertion messages."""
    return "\n".join(str(p) for p in problems)


def _short(text: str, size: int = 300) -> str:
    return text if len(text) <= size else text[: size - 3] + "..."


class Spec:
    """Telnyx's OpenAPI document and the checks the contract tests make against it."""

    def __init__(self, path: Path) -> None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C one loads 10x faster
        with path.open(encoding="utf-8") as f:
            self.doc: dict[str, Any] = yaml.load(f, Loader=loader)
        self._validators: dict[str, OAS31Validator] = {}
        resource = DRAFT202012.create_resource(self.doc)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.operations: dict[str, tuple[str, str]] = {}
        for path_key, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    self.operations[item[method]["operationId"]] = (method.upper(), path_key)

    # ------------------------------------------------------------------- lookups

    def lookup(self, ref: str) -> Any:
        """The node a local ``#/...`` reference points at."""
        node: Any = self.doc
        for part in ref.removeprefix("#/").split("/") if ref != "#" else []:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _deref(self, node: Any, at: str) -> tuple[Any, str]:
        while isinstance(node, dict) and "$ref" in node:
            at = node["$ref"]
            node = self.lookup(at)
        return node, at

    def operation(self, op_id: str) -> tuple[dict[str, Any], str]:
        """The operation object and its JSON pointer in the document."""
        method, path_key = self.operations[op_id]
        at = "#" + pointer("paths", path_key, method.lower())
        found: dict[str, Any] = self.lookup(at)
        return found, at

    def path(self, op_id: str, **params: str) -> str:
        """The operation's path (without ``/v2``), path parameters filled in."""
        return self.operations[op_id][1].format(**params)

    def declared(self, op_id: str) -> list[str]:
        """The response keys the operation declares ("200", "422", "default", ...)."""
        return list(self.operation(op_id)[0]["responses"])

    def response(self, op_id: str, status: int) -> tuple[dict[str, Any], str] | None:
        """The response object the spec gives for this status (exact, ``4XX``, ``default``)."""
        op, at = self.operation(op_id)
        responses = op["responses"]
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                node, where = self._deref(responses[key], f"{at}{pointer('responses', key)}")
                return node, where
        return None

    def parameters(self, op_id: str) -> list[dict[str, Any]]:
        """The operation's parameters (path-item ones too), references resolved."""
        method, path_key = self.operations[op_id]
        item = self.doc["paths"][path_key]
        raw = [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
        return [self._deref(p, "")[0] for p in raw]

    def query_names(self, op_id: str) -> set[str]:
        """Every query key the operation declares, deepObject ones spelled ``page[size]``."""
        names: set[str] = set()
        for param in self.parameters(op_id):
            if param["in"] != "query":
                continue
            name, schema = param["name"], self._deref(param.get("schema", {}), "")[0]
            if param.get("style") != "deepObject" or "properties" not in schema:
                names.add(name)
                continue
            for prop, sub in schema["properties"].items():
                names.add(f"{name}[{prop}]")
                sub = self._deref(sub, "")[0]
                names.update(f"{name}[{prop}][{inner}]" for inner in sub.get("properties", {}))
        return names

    # ------------------------------------------------------------------- validation

    def _validator(self, at: str) -> OAS31Validator:
        if at not in self._validators:
            self._validators[at] = OAS31Validator(
                {"$ref": SPEC_URI + at}, registry=self.registry, format_checker=oas31_format_checker
            )
        return self._validators[at]

    def validate(self, instance: Any, at: str, where: str) -> list[Problem]:
        """Every violation of the schema at ``at`` (a ``#/...`` pointer) by ``instance``."""
        errors = sorted(self._validator(at).iter_errors(instance), key=lambda e: list(e.path))
        return [Problem(where, pointer(*e.absolute_path), _message(e)) for e in errors]

    def check_response(
        self,
        op_id: str,
        status: int,
        content_type: str,
        body: bytes,
        *,
        fallback: str | None = None,
    ) -> list[Problem]:
        """Status declared, content type declared, body valid for that status.

        ``fallback`` is a schema to check the body against where the spec describes none
        (an undeclared status, or a declared one without ``content``); without it those
        are problems themselves.
        """
        where = f"{op_id} {status}"
        found = self.response(op_id, status)
        if found is None and fallback is None:
            declared = ", ".join(self.declared(op_id))
            return [Problem(where, "", f"status {status} is not declared (declared: {declared})")]
        mime = content_type.split(";", 1)[0].strip().lower()
        content = (found[0].get("content") if found else None) or {}
        if content:
            assert found is not None
            if mime not in content:
                declared = ", ".join(content)
                return [Problem(where, "", f"content type {mime!r} not declared ({declared})")]
            at = f"{found[1]}{pointer('content', mime, 'schema')}"
        elif not body.strip():
            return []
        elif fallback is not None:
            where += f" (no body in the spec; checked against {fallback.rsplit('/', 1)[-1]})"
            at = fallback
        else:
            return [Problem(where, "", "the spec declares no body, but one was sent")]
        instance, problem = _parse(mime, body, where)
        return [problem] if problem else self.validate(instance, at, where)

    def check_webhook(self, name: str, headers: Mapping[str, str], body: bytes) -> list[Problem]:
        """A delivered webhook against ``webhooks.<name>``: headers, content type, body."""
        op, at = self._deref(self.doc["webhooks"][name]["post"], f"#/webhooks/{name}/post")
        where = f"webhook {name}"
        problems: list[Problem] = []
        for param in op.get("parameters", []):
            param = self._deref(param, "")[0]
            if param["in"] != "header":
                continue
            value: Any = headers.get(param["name"].lower())
            if value is None:
                if param.get("required"):
                    problems.append(Problem(where, f"header {param['name']}", "missing"))
                continue
            schema = param.get("schema", {})
            if schema.get("type") == "integer" and value.lstrip("-").isdigit():
                value = int(value)
            problems += [
                Problem(where, f"header {param['name']}", p.message)
                for p in self._validate_node(value, schema, where)
            ]
        content = op["requestBody"]["content"]
        mime = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if mime not in content:
            declared = ", ".join(content)
            return [
                *problems,
                Problem(where, "", f"content type {mime!r} not declared ({declared})"),
            ]
        instance, problem = _parse(mime, body, where)
        if problem:
            return [*problems, problem]
        at = f"{at}{pointer('requestBody', 'content', mime, 'schema')}"
        return problems + self.validate(instance, at, where)

    def _validate_node(self, value: Any, schema: dict[str, Any], where: str) -> list[Problem]:
        check = OAS31Validator(schema, registry=self.registry, format_checker=oas31_format_checker)
        errors = check.iter_errors(value)
        return [Problem(where, pointer(*e.absolute_path), _message(e)) for e in errors]


def _message(error: ValidationError) -> str:
    text = _short(error.message)
    if error.context:  # oneOf/anyOf: say which branch came closest and why it failed
        closest = best_match(error.context)
        text += f" (closest: {pointer(*closest.absolute_path) or '/'}: {_short(closest.message)})"
    return text


def _parse(mime: str, body: bytes, where: str) -> tuple[Any, Problem | None]:
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(body), None
        except ValueError as e:
            return None, Problem(where, "", f"body is not JSON: {e}: {body[:200]!r}")
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, Problem(where, "", f"body is not UTF-8 text: {e}")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def spec() -> Spec:
    """Telnyx's OpenAPI subset, kept in the repository beside this file."""
    return Spec(SPEC_PATH)


@pytest.fixture(scope="session")
def prism(spec: Spec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    """Prism mocking the spec, from node_modules/ (``make test`` installs it); stopped by pid.

    Missing, it fails the tests that need it with one line saying how to install it:
    a contract test that cannot run must never pass unnoticed as a skip.
    """
    try:
        binary = installed()
    except PrismUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    try:
        server = PrismServer.start(binary, SPEC_PATH, log_path=log_path)
    except PrismUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox process for the session, with fast call timings; stopped by pid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "TELEPHONY_"))}
    log_path = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with log_path.open("wb") as log:
        server = SandboxProcess.start(args=SANDBOX_ARGS, env=env, stderr=log)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> Iterator[SandboxProcess]:
    """The session sandbox with a clean slate (no credentials, calls, faults, log)."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.clear_faults()


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    """The webhook receiver on 127.0.0.1, in a thread (each test takes its own URL)."""
    with webhook_receiver() as receiver:
        yield receiver
