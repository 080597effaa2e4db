"""The import-linter contracts in pyproject.toml hold, and break when they should.

``lint-imports`` runs in ``make lint`` (so in ``make test``). These tests prove each of the
four contracts actually catches its violation: the packages are copied to a temporary
directory, one forbidden import is added, and ``lint-imports`` must exit non-zero and
name the broken contract. A contract that passes whatever the code does would be worse
than none, because it would be trusted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("telephony", "dashboard", "config", "devserver")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = {
    c["id"]: c
    for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}
# telephony/ children that are not core: the process packages and the entry points.
NOT_CORE = {"web", "worker", "supervisor", "templatetags", "management", "__init__"}


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _copy_tree(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_import_contracts__hold_on_the_code() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    ("contract_id", "module", "line"),
    [
        ("web-not-worker", "telephony/web/views.py", "import telephony.worker.main"),
        ("web-not-worker", "dashboard/ops/health.py", "import telephony.supervisor.loop"),
        ("core-below-processes", "telephony/state.py", "import telephony.web.client"),
        ("telnyx-only-in-adapter", "telephony/worker/operations.py", "import telnyx"),
        ("telnyx-only-in-adapter", "devserver/sandbox/api.py", "import telnyx"),
        ("production-not-devserver", "config/settings.py", "import devserver.sandbox"),
    ],
)
def test_import_contracts__a_deliberate_violation_fails(
    tmp_path: Path, contract_id: str, module: str, line: str
) -> None:
    tree = _copy_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text() + f"\n{line}  # deliberate violation\n")

    done = _lint_imports(tree)

    assert done.returncode != 0, done.stdout
    assert f"{CONTRACTS[contract_id]['name']} BROKEN" in done.stdout, done.stdout
    assert "Contracts: 3 kept, 1 broken." in done.stdout, done.stdout


def test_import_contracts__core_lists_every_top_level_module() -> None:
    """A new core module (``telephony/keys.py``) is only checked once the contract names it."""
    children = {
        p.stem
        for p in (ROOT / "telephony").iterdir()
        if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    listed = {
        m.removeprefix("telephony.") for m in CONTRACTS["core-below-processes"]["source_modules"]
    }
    assert children - NOT_CORE == listed


def test_make_lint__runs_lint_imports() -> None:
    done = subprocess.run(
        ["make", "-n", "lint"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert any("lint-imports" in row for row in done.stdout.splitlines()), done.stdout
