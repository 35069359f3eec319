"""`make up` (`python manage.py up`) on embedded defaults: healthy within 3 minutes, Ctrl-C leaves nothing."""
import signal
import sqlite3
import socket
import time

import pytest
import requests

from config.embedded import free_port
from tests.conftest import wait_until
from tests.stack import EmbeddedStack, alive

pytestmark = pytest.mark.stack
HEALTH_BUDGET_S = 180


def all_healthy(stack: EmbeddedStack, token: str):
    response = requests.get(f"{stack.url}/api/health/", headers={"Authorization": f"Token {token}"}, timeout=10)
    body = response.json()
    return body if response.status_code == 200 and all(part["ok"] for part in body.values()) else None


def test_up_serves_login_and_is_healthy_then_ctrl_c_leaves_no_process(tmp_path):
    stack = EmbeddedStack(tmp_path / "var").start()
    try:
        assert requests.get(f"{stack.url}/login/", timeout=10).status_code == 200
        token = requests.post(f"{stack.url}/api/auth/token/", json={"username": "admin", "password": stack.password},
                              timeout=10).json()["token"]
        report = wait_until(lambda: all_healthy(stack, token), timeout_s=HEALTH_BUDGET_S, interval_s=1,
                            message="database, broker, graph and a worker to be healthy")
        elapsed = time.monotonic() - stack.started_at
        print(f"embedded stack healthy {elapsed:.1f} s after `manage.py up` started")
        assert elapsed < HEALTH_BUDGET_S
        assert report["database"]["vendor"] == "sqlite" and report["graph"]["backend"] == "falkordb"
        assert requests.get(f"{stack.url}/api/projects/", headers={"Authorization": f"Token {token}"},
                            timeout=10).json()[0]["name"] == "demo"
        children = stack.descendants()
        names = " ".join(" ".join(process.cmdline()) for process in children)
        assert "redis-server" in names and "celery" in names and "uvicorn" in names
    finally:
        code = stack.stop(signal.SIGINT)
    assert code == 0, stack.output
    wait_until(lambda: not alive(children), timeout_s=10, message=f"no process left: {alive(children)}")
    assert "stopped." in stack.output
    # the worker said goodbye on its way out: the fleet shows it offline at once
    with sqlite3.connect(stack.var_dir / "trainyard.sqlite3") as database:
        assert database.execute("SELECT DISTINCT status FROM trainer_app_worker").fetchall() == [("offline",)]


def test_a_second_up_keeps_the_data_and_the_generated_password(tmp_path):
    first = EmbeddedStack(tmp_path / "var").start()
    try:
        password = first.password
        token = requests.post(f"{first.url}/api/auth/token/", json={"username": "admin", "password": password},
                              timeout=10).json()["token"]
        created = requests.post(f"{first.url}/api/projects/", json={"name": "kept"},
                                headers={"Authorization": f"Token {token}"}, timeout=10)
        assert created.status_code == 201, created.text
    finally:
        assert first.stop() == 0
    second = EmbeddedStack(tmp_path / "var", TRAINYARD_ADMIN_PASSWORD="from-the-environment-1").start()
    try:
        assert "from TRAINYARD_ADMIN_PASSWORD" in second.output
        token = requests.post(f"{second.url}/api/auth/token/",
                              json={"username": "admin", "password": "from-the-environment-1"}, timeout=10).json()["token"]
        names = [p["name"] for p in requests.get(f"{second.url}/api/projects/",
                                                 headers={"Authorization": f"Token {token}"}, timeout=10).json()]
        assert names == ["demo", "kept"]
    finally:
        assert second.stop() == 0


def test_sigkill_of_the_supervisor_still_leaves_no_process(tmp_path):
    stack = EmbeddedStack(tmp_path / "var").start()
    children = stack.descendants()
    assert len(children) >= 4
    stack.stop(signal.SIGKILL)
    wait_until(lambda: not alive(children), timeout_s=30, message="children to die with their parent")


def test_a_taken_port_is_one_line_and_starts_nothing(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = EmbeddedStack(tmp_path / "var", port=port)
        with pytest.raises(AssertionError):
            stack.start(timeout_s=60)
    assert stack.process.returncode == 2
    assert stack.stderr.strip() == (f"trainyard: port {port} on 127.0.0.1 is already taken (another Trainyard?): "
                                    "stop what uses it or set TRAINYARD_PORT to a free port")


@pytest.mark.parametrize(("variable", "template", "expected"), [
    ("REDIS_URL", "redis://127.0.0.1:{port}/0", "broker at redis://127.0.0.1:{port}/0 is unreachable"),
    ("DATABASE_URL", "postgres://postgres:pw@127.0.0.1:{port}/trainyard",
     "database at postgres://postgres:***@127.0.0.1:{port}/trainyard is unreachable"),
    ("KG_URL", "bolt://127.0.0.1:{port}", "graph at bolt://127.0.0.1:{port} is unreachable"),
])
def test_an_unreachable_service_is_one_line_naming_it_the_url_and_the_fix(tmp_path, variable, template, expected):
    port = free_port()
    stack = EmbeddedStack(tmp_path / "var", **{variable: template.format(port=port)})
    with pytest.raises(AssertionError):
        stack.start(timeout_s=90)
    assert stack.process.returncode == 2
    lines = stack.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stack.stderr, stack.stderr
    assert expected.format(port=port) in lines[0] and f"fix {variable}" in lines[0]
    assert "pw@" not in lines[0]
    assert not alive(stack.descendants())
