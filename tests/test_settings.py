"""Settings: development defaults with no environment, refusal to start misconfigured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TELEPHONY_"))}
    base.pop("REDIS_URL", None)
    base.pop("DATABASE_URL", None)
    return subprocess.run(
        argv,
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "manage.py", *args], env)


def _settings(expr: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = f"import django; django.setup(); from django.conf import settings; print({expr})"
    return _run([sys.executable, "-c", code], {"DJANGO_SETTINGS_MODULE": "config.settings", **env})


def test_settings__production_without_secret_key_stops_with_one_line(tmp_path: Path) -> None:
    result = _manage(
        "check",
        env={
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "x.example",
            "TELEPHONY_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: DJANGO_SECRET_KEY must be set")
    assert "Traceback" not in result.stderr


def test_settings__production_without_allowed_hosts_stops_with_one_line(tmp_path: Path) -> None:
    result = _manage(
        "check",
        env={
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "k" * 50,
            "TELEPHONY_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 2
    assert "DJANGO_ALLOWED_HOSTS must be set" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings__development_generates_and_keeps_a_secret_key(tmp_path: Path) -> None:
    expr = "settings.SECRET_KEY, settings.DEBUG, settings.DATABASES['default']['NAME']"
    runs = [_settings(expr, {"TELEPHONY_VAR_DIR": str(tmp_path)}) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    first, second = (r.stdout.split() for r in runs)
    assert first[0] == second[0] and len(first[0]) >= 50
    assert first[1] == "True"
    assert first[2] == str(tmp_path / "db.sqlite3")
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_settings__database_and_redis_urls_override_defaults(tmp_path: Path) -> None:
    expr = "settings.DATABASES['default']['ENGINE'], settings.REDIS_URL"
    env = {
        "TELEPHONY_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://u@db.example:5432/app",
        "REDIS_URL": "redis://cache.example:6379/2",
    }
    result = _settings(expr, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "redis://cache.example:6379/2",
    ]
