"""A bad setting at start-up gives one line naming it, the value tried and the fix; never a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_manage(*arguments, timeout=60, **environment):
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "KG_URL", "TRAINYARD_PORT"}}
    env.update(environment)
    return subprocess.run([sys.executable, "manage.py", *arguments], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://db/trainyard", "DATABASE_URL='mysql://db/trainyard' has scheme mysql://"),
        ("REDIS_URL", "redis://127.0.0.1:6379/zero", "REDIS_URL='redis://127.0.0.1:6379/zero': the database"),
        ("KG_URL", "http://neo4j:7474", "KG_URL='http://neo4j:7474' has scheme http://"),
        ("TRAINYARD_MODE", "staging", "TRAINYARD_MODE='staging' is unknown"),
    ],
)
@pytest.mark.parametrize("command", ["check", "up"])
def test_malformed_setting_fails_with_one_line(variable, value, expected, command, tmp_path):
    result = run_manage(command, TRAINYARD_VAR_DIR=str(tmp_path), **{variable: value})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trainyard: ") and expected in lines[0]


def test_unwritable_var_directory_fails_with_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_manage("up", TRAINYARD_VAR_DIR=str(blocker / "var"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "is not writable" in result.stderr and "TRAINYARD_VAR_DIR" in result.stderr


def test_help_of_up_describes_the_embedded_stack():
    result = run_manage("up", "--help")
    assert result.returncode == 0
    assert "Ctrl-C stops every process" in result.stdout and "REDIS_URL" in result.stdout
