"""The files derived from Telnyx's spec and the pinned Prism agree with their sources.

``devserver/sandbox/spec_schemas.json`` is what ``python -m devserver.sandbox.spec``
builds from ``tests/contract/telnyx/telnyx-openapi-subset.yml``; when the subset gains
operations, the sandbox must be regenerated from the same file, or its request checks
drift from the contract tests'. Prism's version is pinned in ``package.json`` and locked
in ``package-lock.json``; ``npm ci`` refuses a lock that disagrees, so catch it here first.
"""

from __future__ import annotations

import json

import pytest

from devserver.sandbox.spec import SCHEMA_FILE, build
from tests.conftest import ROOT
from tests.contract.conftest import Spec
from tests.contract.prism import PRISM_PACKAGE, PRISM_VERSION

pytestmark = pytest.mark.contract


def test_sandbox_schemas__are_regenerated_from_the_spec_in_the_repository(spec: Spec) -> None:
    expected = json.dumps(build(spec.doc), indent=1, sort_keys=True) + "\n"
    assert SCHEMA_FILE.read_text() == expected, (
        "devserver/sandbox/spec_schemas.json is stale: run "
        "python -m devserver.sandbox.spec tests/contract/telnyx/telnyx-openapi-subset.yml"
    )


def test_prism__exact_version_pinned_and_locked() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert PRISM_VERSION[0].isdigit(), "pin an exact version, not a range"
    assert lock["packages"][""]["devDependencies"][PRISM_PACKAGE] == PRISM_VERSION
    assert lock["packages"][f"node_modules/{PRISM_PACKAGE}"]["version"] == PRISM_VERSION
