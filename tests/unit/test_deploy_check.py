"""Production settings pass Django's deployment checks, and refuse to start without their secrets."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import KNOWN_VARIABLES

REPO = Path(__file__).resolve().parents[2]


def production_environment(var_dir: Path, **overrides: str | None) -> dict[str, str]:
    """What docker/compose.yml gives the app, pointed at the test services; None removes a variable."""
    environment = {key: value for key, value in os.environ.items() if key not in KNOWN_VARIABLES}
    environment.update({
        "TRAINYARD_MODE": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "trainyard.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "TRAINYARD_VAR_DIR": str(var_dir),
    })
    for key, value in overrides.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


def run_manage(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *arguments], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_production_settings_pass_the_deploy_checks_without_warnings(tmp_path):
    result = run_manage(production_environment(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, f"manage.py check --deploy reported:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS"),
        ({"DEBUG": "true"}, "DEBUG"),
    ],
    ids=["without-secret-key", "without-allowed-hosts", "with-debug"],
)
def test_production_refuses_to_start_with_one_line_naming_the_variable(tmp_path, overrides, variable):
    result = run_manage(production_environment(tmp_path, **overrides), "check")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trainyard: ") and variable in lines[0]
